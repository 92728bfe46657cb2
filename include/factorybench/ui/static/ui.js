// The only script of the factorybench pages (they render in Airflow's UI, in iframes whose
// sandbox allows scripts and same-origin access but neither top-level navigation nor popups).
"use strict";

// Links marked data-top open an Airflow page around this frame: Airflow's router is asked to go
// there, as a click in Airflow's own menu would (history entry, then popstate).
function openInAirflow(href) {
  try {
    const top = window.top;
    const idx = ((top.history.state && top.history.state.idx) || 0) + 1;
    top.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: idx }, "", href);
    top.dispatchEvent(new top.PopStateEvent("popstate", { state: top.history.state }));
  } catch (err) {
    window.location.href = href;
  }
}

document.addEventListener("click", function (event) {
  if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const link = event.target.closest("a[data-top], a[data-trigger-form]");
  if (!link) return;
  event.preventDefault();
  if (link.hasAttribute("data-trigger-form")) {
    // Re-run with changed parameters: Airflow's own trigger form (on the run's page, the
    // Trigger button offers "Trigger again with this config").
    let doc = null;
    try { doc = window.top.document; } catch (err) { }
    const button = doc && doc.querySelector('[data-testid="trigger-dag-button"]');
    if (button) {
      button.click();
      // A run with parameters gets a menu: take "Trigger again with this config", pre-filled.
      window.setTimeout(function () {
        const again = doc.querySelector('[role="menuitem"][data-value="triggerWithConfig"]');
        if (again) again.click();
      }, 150);
      return;
    }
  }
  openInAirflow(link.getAttribute("href"));
});

// A picker submits its form as soon as it changes.
document.addEventListener("change", function (event) {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
