// The claim page's controls, one set per photo: its layer switch and its compare slider.
// Served as a file: the page's Content-Security-Policy runs no inline script.
"use strict";
document.querySelectorAll("input[data-view]").forEach(function (radio) {
  radio.addEventListener("change", function () {
    var view = document.getElementById(radio.dataset.view);
    view.src = radio.value;
    view.alt = radio.dataset.label;
  });
});
document.querySelectorAll("input[data-top]").forEach(function (slider) {
  slider.addEventListener("input", function () {
    document.getElementById(slider.dataset.top).style.clipPath =
      "inset(0 " + (100 - Number(slider.value)) + "% 0 0)";
  });
});
