// The live-capture page: the phone's camera, two or three photos of the damage from different
// sides, sent at once. No gallery: the photos are frames taken from the camera here. Where the
// browser has no camera API, the page falls back to a file field that asks the phone for its
// camera (capture=environment). Served as a file: the page's CSP runs no inline script.
"use strict";
(function () {
  var form = document.getElementById("capture-form");
  if (!form) { return; }
  var video = document.getElementById("camera");
  var shoot = document.getElementById("shoot");
  var send = document.getElementById("send");
  var shots = document.getElementById("shots");
  var files = document.getElementById("photos");
  var status = document.getElementById("capture-status");
  var fallback = document.getElementById("fallback");
  var most = Number(form.dataset.most || "3");
  var least = Number(form.dataset.least || "1");
  var taken = [];

  function say(key) { status.textContent = form.dataset[key] || key; }

  function refresh() {
    send.disabled = taken.length < least;
    shoot.disabled = taken.length >= most;
    document.getElementById("shot-count").textContent = String(taken.length);
  }

  function useFallback() {
    video.hidden = true;
    shoot.hidden = true;
    fallback.hidden = false;
    files.hidden = false;
    files.required = true;
    send.disabled = false;
    say("noCamera");
  }

  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    useFallback();
    return;
  }
  navigator.mediaDevices
    .getUserMedia({ video: { facingMode: { ideal: "environment" }, width: { ideal: 1920 } }, audio: false })
    .then(function (stream) {
      video.srcObject = stream;
      video.hidden = false;
      shoot.hidden = false;
      say("ready");
      refresh();
    })
    .catch(function () { useFallback(); });

  shoot.addEventListener("click", function () {
    if (!video.videoWidth || taken.length >= most) { return; }
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      if (!blob) { return; }
      taken.push(new File([blob], "live-" + (taken.length + 1) + ".jpg", { type: "image/jpeg" }));
      canvas.className = "shot";
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", (form.dataset.shotLabel || "photo") + " " + taken.length);
      shots.appendChild(canvas);
      say(taken.length >= most ? "enough" : "another");
      refresh();
    }, "image/jpeg", 0.92);
  });

  form.addEventListener("submit", function (event) {
    if (files.required) { return; }  // the fallback field sends itself
    event.preventDefault();
    if (taken.length < least) { return; }
    var transfer = new DataTransfer();
    taken.forEach(function (file) { transfer.items.add(file); });
    files.files = transfer.files;
    send.disabled = true;
    shoot.disabled = true;
    say("sending");
    form.submit();
  });
})();
