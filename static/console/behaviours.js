// Small page behaviours, declared in the markup with data attributes (no inline handlers: the
// Content-Security-Policy allows scripts from this site only).
//   data-autosubmit       on a <select>: submit its form when the choice changes
//   data-confirm="text"   on a <form>: ask before submitting
//   data-copy="element-id" on a <button>: copy that element's text, then say so
//   data-print            on a <button>: open the print dialog
//   data-nav-toggle       on a <button> in the top bar: fold the navigation behind it on a narrow screen
(function () {
  const toggle = document.querySelector("[data-nav-toggle]");
  if (toggle) {
    const bar = toggle.closest(".topbar");
    bar.classList.add("collapsible");
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      const open = bar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    });
  }
  document.addEventListener("change", function (event) {
    const select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.submit();
  });
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("click", function (event) {
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const source = document.getElementById(copy.dataset.copy);
      navigator.clipboard.writeText(source.textContent).then(function () { copy.textContent = "Copied"; });
    }
    if (event.target.closest("[data-print]")) window.print();
  });
})();
