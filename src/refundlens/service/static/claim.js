// The claim page's two controls: the layer switch and the compare slider. Served as a file:
// the page's Content-Security-Policy runs no inline script.
"use strict";
document.querySelectorAll("input[name=layer]").forEach(function (radio) {
  radio.addEventListener("change", function () {
    var view = document.getElementById("layer-view");
    view.src = radio.value;
    view.alt = radio.dataset.label;
  });
});
var slider = document.getElementById("compare-slider");
if (slider) {
  slider.addEventListener("input", function () {
    document.getElementById("compare-top").style.clipPath =
      "inset(0 " + (100 - Number(slider.value)) + "% 0 0)";
  });
}
