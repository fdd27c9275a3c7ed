/* The model page's daily token volume: an inline SVG bar chart drawn from the page's json_script data
   (a list of {date: "YYYY-MM-DD", tokens: N}, oldest first). One bar per day, four gridlines, a date every
   week, a readout on hover. Sets data-drawn="true" on the chart element once it is drawn. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var HEIGHT = 220;
  var PAD = { top: 12, right: 8, bottom: 26, left: 48 };
  var GRIDLINES = 4;

  function node(name, attrs, parent) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { el.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(el);
    return el;
  }

  function compact(n) {
    var units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][0]) {
        var v = n / units[i][0];
        return (v < 10 ? v.toFixed(1) : v.toFixed(0)).replace(/\.0$/, "") + units[i][1];
      }
    }
    return String(n);
  }

  // The smallest "round" top of the axis (1, 2, 2.5 or 5 × 10^k per gridline) that holds max.
  function axisTop(max) {
    if (max <= 0) return GRIDLINES;
    var magnitude = Math.pow(10, Math.floor(Math.log10(max / GRIDLINES)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * magnitude * GRIDLINES >= max) return steps[i] * magnitude * GRIDLINES;
    }
    return 10 * magnitude * GRIDLINES;
  }

  function dayLabel(iso) {
    var parts = iso.split("-");
    return MONTHS[Number(parts[1]) - 1] + " " + Number(parts[2]);
  }

  function draw(chart, days) {
    var width = Math.max(chart.clientWidth, 320);
    var plotWidth = width - PAD.left - PAD.right;
    var plotHeight = HEIGHT - PAD.top - PAD.bottom;
    var bottom = PAD.top + plotHeight;
    var idle = days.every(function (d) { return d.tokens === 0; });
    var top = axisTop(days.reduce(function (m, d) { return Math.max(m, d.tokens); }, 0));
    var svg = node("svg", { width: width, height: HEIGHT, viewBox: "0 0 " + width + " " + HEIGHT, class: "chart-svg" });

    var grid = node("g", { class: "grid" }, svg);
    for (var i = 0; i <= (idle ? 0 : GRIDLINES); i++) {  // an idle chart has no scale, only its baseline
      var y = bottom - (plotHeight * i) / GRIDLINES;
      node("line", { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, class: i === 0 ? "axis" : "" }, grid);
      node("text", { x: PAD.left - 8, y: y + 4, "text-anchor": "end" }, grid).textContent = compact((top * i) / GRIDLINES);
    }

    var readout = document.createElement("div");
    readout.className = "chart-readout";
    readout.hidden = true;

    var slot = plotWidth / days.length;
    var barWidth = Math.max(2, Math.min(24, slot * 0.68));
    var bars = node("g", { class: "bars" }, svg);
    var labels = node("g", { class: "labels" }, svg);
    days.forEach(function (day, index) {
      var height = day.tokens > 0 ? Math.max(2, (plotHeight * day.tokens) / top) : 0;
      var x = PAD.left + index * slot + (slot - barWidth) / 2;
      var bar = node("rect", {
        class: "bar", x: x, y: bottom - height, width: barWidth, height: height, rx: Math.min(3, barWidth / 3),
        "data-date": day.date, "data-tokens": day.tokens,
      }, bars);
      var text = dayLabel(day.date) + ": " + day.tokens.toLocaleString("en-US") + " tokens";
      node("title", {}, bar).textContent = text;
      var hit = node("rect", { class: "hit", x: PAD.left + index * slot, y: PAD.top, width: slot, height: plotHeight }, bars);
      node("title", {}, hit).textContent = text;
      hit.addEventListener("mouseenter", function () {
        bar.classList.add("active");
        readout.textContent = text;
        readout.hidden = false;
        var left = Math.min(Math.max(x + barWidth / 2, 70), width - 70);
        readout.style.left = left + "px";
      });
      hit.addEventListener("mouseleave", function () {
        bar.classList.remove("active");
        readout.hidden = true;
      });
      var last = index === days.length - 1;
      if ((days.length - 1 - index) % 7 === 0) {  // the last day, and every week back from it
        var centre = x + barWidth / 2;
        var anchor = last ? "end" : centre - PAD.left < 24 ? "start" : "middle";
        var labelX = last ? width - PAD.right : anchor === "start" ? PAD.left : centre;
        node("text", { x: labelX, y: HEIGHT - 6, "text-anchor": anchor }, labels).textContent = dayLabel(day.date);
      }
    });

    if (idle) {
      node("text", { x: PAD.left + plotWidth / 2, y: PAD.top + plotHeight / 2, "text-anchor": "middle", class: "empty" }, svg)
        .textContent = "No traffic in the last " + days.length + " days";
    }

    chart.replaceChildren(svg, readout);
    chart.setAttribute("data-drawn", "true");
    chart.setAttribute("data-days", String(days.length));
  }

  function start() {
    document.querySelectorAll("[data-chart='daily-volume']").forEach(function (chart) {
      var source = document.getElementById(chart.getAttribute("data-source"));
      var days = JSON.parse(source.textContent);
      var drawnWidth = 0;
      function redraw() {
        if (chart.clientWidth === drawnWidth) return;
        drawnWidth = chart.clientWidth;
        draw(chart, days);
      }
      redraw();
      var pending = 0;
      window.addEventListener("resize", function () {
        clearTimeout(pending);
        pending = setTimeout(redraw, 150);
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
