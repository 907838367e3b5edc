// The claim page's controls, one set per photo: its layer switch and its compare slider.
// Served as a file: the page's Content-Security-Policy runs no inline script.
"use strict";
document.querySelectorAll("input[data-view]").forEach(function (radio) {
  radio.addEventListener("change", function () {
    var view = document.getElementById(radio.dataset.view);
    view.src = radio.value;
    view.alt = radio.dataset.label;
    if (view.parentElement && view.parentElement.tagName === "A") {
      view.parentElement.href = radio.value;
    }
  });
});
document.querySelectorAll("input[data-top]").forEach(function (slider) {
  slider.addEventListener("input", function () {
    document.getElementById(slider.dataset.top).style.clipPath =
      "inset(0 " + (100 - Number(slider.value)) + "% 0 0)";
  });
});

// The decision form's words survive a refusal: the form posts, the server answers with a
// redirect to this page (?error=), and a reviewer must not type the reason again. What was
// typed is kept in this tab only (sessionStorage), put back when the page says this form was
// refused (form=decision beside the tagged error), and dropped once anything else is shown.
(function () {
  var form = document.getElementById("decision-form");
  var key = form ? "refundlens.decision." + form.getAttribute("action") : null;
  if (!form || !window.sessionStorage) { return; }
  var fields = ["reason", "buyer_note", "amount"];
  var saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) { saved = null; }
  sessionStorage.removeItem(key);
  var refusedHere = new URLSearchParams(window.location.search).get("form") === "decision";
  if (saved && refusedHere && document.querySelector("p.error[role=alert]")) {
    fields.forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field && typeof saved[name] === "string") { field.value = saved[name]; }
    });
    var chosen = form.querySelector('input[name="decision"][value="' + String(saved.decision).replace(/[^a-z_]/g, "") + '"]');
    if (chosen) { chosen.checked = true; }
    var forgery = form.elements.namedItem("forgery");
    if (forgery && typeof saved.forgery === "boolean") { forgery.checked = saved.forgery; }
  }
  form.addEventListener("submit", function () {
    var kept = {};
    fields.forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field) { kept[name] = field.value; }
    });
    var picked = form.querySelector('input[name="decision"]:checked');
    kept.decision = picked ? picked.value : "";
    var forgery = form.elements.namedItem("forgery");
    if (forgery) { kept.forgery = forgery.checked; }
    try { sessionStorage.setItem(key, JSON.stringify(kept)); } catch (e) { /* full or off */ }
  });
})();
