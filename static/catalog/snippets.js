/* The model page's code samples as tabs, and the Copy buttons (navigator.clipboard where the page is a
   secure context, else a hidden textarea and execCommand). Without JavaScript every sample is shown. */
(function () {
  "use strict";

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.top = "-1000px";
    document.body.appendChild(area);
    area.select();
    try {
      if (!document.execCommand("copy")) throw new Error("copy was refused");
    } finally {
      area.remove();
    }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { fallbackCopy(text); });
    }
    return new Promise(function (resolve) { fallbackCopy(text); resolve(); });
  }

  function setUpCopy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(target.textContent).then(
        function () { button.textContent = "Copied"; button.classList.add("done"); },
        function () { button.textContent = "Press Ctrl+C"; }
      ).finally(function () {
        setTimeout(function () { button.textContent = label; button.classList.remove("done"); }, 1600);
      });
      if (window.getSelection) {  // also select it, so a refused copy can still be done by hand
        var range = document.createRange();
        range.selectNodeContents(target);
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
      }
    });
  }

  function setUpTabs(container) {
    var tabs = Array.prototype.slice.call(container.querySelectorAll("[role='tab']"));
    if (!tabs.length) return;
    function select(chosen) {
      tabs.forEach(function (tab) {
        var on = tab === chosen;
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
        document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
      });
    }
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { select(tab); });
      tab.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        var next = tabs[(index + step + tabs.length) % tabs.length];
        select(next);
        next.focus();
      });
    });
    container.classList.add("tabbed");
    container.querySelector("[role='tablist']").hidden = false;
    var linked = tabs.filter(function (tab) { return "#" + tab.getAttribute("aria-controls") === location.hash; });
    select(linked[0] || tabs[0]);
  }

  function start() {
    document.querySelectorAll("[data-tabs]").forEach(setUpTabs);
    document.querySelectorAll("button[data-copy]").forEach(setUpCopy);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
