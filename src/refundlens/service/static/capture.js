// The live-capture page: the phone's camera, two or three photos of the damage from different
// sides, sent at once. No gallery: the photos are frames taken from the camera here. Where the
// browser has no camera API, the page falls back to a file field that asks the phone for its
// camera (capture=environment): a phone's camera app gives one photo a time, so each photo taken
// there is kept and the field is offered again until two or three are taken, then all are sent
// at once as on the camera path (a browser without DataTransfer sends the field as it is). Where the browser has MediaRecorder, the buyer may also record a
// short clip from the same camera stream (it stops by itself after data-clip-seconds); it goes in
// the same upload as the photos (field "clip"), which stay required. First the buyer drags a box
// around the damage on each photo it filed the claim with (canvas.mark, drawn here, no inline
// style): the boxes go as fractions of the photo in the field "damage_boxes" (a JSON array, null
// where not marked), and the photos cannot be sent before at least one box is drawn. A box the
// buyer drew when filing (data-box) is shown and counts as drawn; clearing it sends [] (remove
// it), since null would leave it on file. The photos go by XMLHttpRequest (the upload's progress
// shows; the answer is JSON: received, refused with what to keep, or the link closed), so a
// refusal leaves the page as it was. Served as a file: the page's CSP runs no inline script.
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
  var record = document.getElementById("record");
  var clipField = document.getElementById("clip");
  var clipSeconds = Number(form.dataset.clipSeconds || "0");
  var clipBytes = Number(form.dataset.clipBytes || "0");
  var stream = null;
  var recorder = null;
  var clip = null;
  var ticking = null;
  var boxesField = document.getElementById("damage-boxes");
  var boxes = [];
  var marks = Array.prototype.slice.call(document.querySelectorAll("canvas.mark"));
  var unshown = 0;  // filed photos that could not be shown: no box can be asked on those
  var noMark = document.getElementById("no-mark");
  var leastSide = Number((boxesField && boxesField.dataset.minSide) || "0.01");

  function say(key) { status.textContent = form.dataset[key] || key; }

  // Sending waits for a box, unless the buyer says it cannot draw one (no damage to see on the
  // photo, no pointer to draw with) or no filed photo could be shown: the photos then go
  // unboxed, and a person decides (capture_must_confirm_damage).
  function marked() {
    return !boxesField || unshown >= marks.length || (noMark && noMark.checked) ||
      typeof window.PointerEvent !== "function" ||
      boxes.some(function (box) { return box !== null && box.length === 4; });
  }
  if (noMark) { noMark.addEventListener("change", function () { keepBoxes(); refresh(); }); }
  function lockMarks(locked) {
    if (noMark) { noMark.disabled = locked; }
    Array.prototype.forEach.call(
      document.querySelectorAll("button.clear-mark, button.remove-shot"),
      function (b) { b.disabled = locked; }
    );
  }

  // The boxes drawn survive a reload of the page (its language links reload it: a buyer who
  // switched language lost the box it drew, a walkthrough), for this link only.
  var boxesKey = "refundlens.capture.boxes:" + window.location.pathname;
  function storedBoxes() {
    try {
      var stored = JSON.parse(window.sessionStorage.getItem(boxesKey) || "null");
      return Array.isArray(stored) && stored.length === marks.length ? stored : null;
    } catch (e) { return null; }
  }
  function forgetBoxes() {
    try { window.sessionStorage.removeItem(boxesKey); } catch (e) { /* storage off: nothing kept */ }
  }
  var restored = storedBoxes();
  var sending = false;  // one upload at a time: a second tap while one goes would race it
  var sendHint = document.getElementById("send-hint");
  var cameraInView = true;  // a photo is taken with the camera's picture on screen, not blind
  var shotsTaken = 0;

  function keepBoxes() {
    if (!boxesField) { return; }
    try { window.sessionStorage.setItem(boxesKey, JSON.stringify(boxes)); } catch (e) { /* storage off */ }
    if (noMark && noMark.checked) {
      // "I cannot mark the damage": no box goes, and a box on file is removed ([]), so that
      // no box the buyer disowns is compared or confirmed.
      boxesField.value = JSON.stringify(marks.map(function (canvas) {
        return canvas.dataset.box ? [] : null;
      }));
      return;
    }
    boxesField.value = marked() ? JSON.stringify(boxes) : "";
  }

  // One canvas per filed photo: the photo, and the box being dragged over it.
  function markable(canvas) {
    var index = Number(canvas.dataset.index);
    var photo = new Image();
    var start = null;
    var onFile = null;  // the box drawn when the claim was filed, if any
    try { onFile = canvas.dataset.box ? JSON.parse(canvas.dataset.box) : null; } catch (e) { onFile = null; }
    if (!Array.isArray(onFile) || onFile.length !== 4) { onFile = null; }
    boxes[index] = onFile;
    var kept = restored ? restored[index] : undefined;
    if (kept === null || (Array.isArray(kept) && (kept.length === 0 || kept.length === 4) &&
        kept.every(function (v) { return typeof v === "number" && v >= 0 && v <= 1; }))) {
      boxes[index] = kept;
    }
    function draw(box) {
      var context = canvas.getContext("2d");
      context.drawImage(photo, 0, 0, canvas.width, canvas.height);
      if (!box || box.length !== 4) { return; }
      var width = Math.max(2, Math.round(canvas.width / 200));
      context.lineWidth = width;
      context.strokeStyle = "#1e5af0";
      context.strokeRect(box[0] * canvas.width, box[1] * canvas.height,
        (box[2] - box[0]) * canvas.width, (box[3] - box[1]) * canvas.height);
    }
    function at(event) {  // the photo's fractions, inside the canvas' border
      var rect = canvas.getBoundingClientRect();
      var left = rect.left + canvas.clientLeft;
      var top = rect.top + canvas.clientTop;
      return [
        Math.min(1, Math.max(0, (event.clientX - left) / (canvas.clientWidth || rect.width))),
        Math.min(1, Math.max(0, (event.clientY - top) / (canvas.clientHeight || rect.height)))
      ];
    }
    function spanned(a, b) {
      function r(v) { return Math.round(v * 10000) / 10000; }
      return [r(Math.min(a[0], b[0])), r(Math.min(a[1], b[1])), r(Math.max(a[0], b[0])), r(Math.max(a[1], b[1]))];
    }
    photo.addEventListener("load", function () {
      canvas.width = photo.naturalWidth;
      canvas.height = photo.naturalHeight;
      // Its shape, for the style's least width: a tall small photo drawn wider than 50vh lets
      // it would be stretched (CSSOM, which the Content-Security-Policy allows).
      canvas.style.setProperty("--aspect", String(photo.naturalWidth / Math.max(1, photo.naturalHeight)));
      canvas.dataset.loaded = "yes";
      draw(boxes[index]);
    });
    photo.addEventListener("error", function () {
      // A photo the page cannot show must not keep the buyer from sending the live photos.
      unshown += 1;
      canvas.hidden = true;
      refresh();
    });
    photo.src = canvas.dataset.src;
    canvas.addEventListener("pointerdown", function (event) {
      // One finger draws, and not while the photos and the box are on their way.
      if (canvas.dataset.loaded !== "yes" || !event.isPrimary || sending) { return; }
      start = at(event);
      if (canvas.setPointerCapture) { canvas.setPointerCapture(event.pointerId); }
      event.preventDefault();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (start && event.isPrimary) { draw(spanned(start, at(event))); }
    });
    function abandon() {  // a system gesture took the pointer: the box stays as it was
      if (!start) { return; }
      start = null;
      draw(boxes[index]);
    }
    canvas.addEventListener("pointercancel", abandon);
    canvas.addEventListener("lostpointercapture", function () { if (start) { abandon(); } });
    canvas.addEventListener("pointerup", function (event) {
      if (!start || !event.isPrimary) { return; }
      var box = spanned(start, at(event));
      start = null;
      // A tap is not a box: at least damage_box_min_side of the photo's width and height.
      var wide = box[2] - box[0] >= leastSide && box[3] - box[1] >= leastSide;
      boxes[index] = wide ? box : boxes[index];
      draw(boxes[index]);
      keepBoxes();
      refresh();
    });
    var clear = document.querySelector('button.clear-mark[data-index="' + index + '"]');
    if (clear) {
      clear.addEventListener("click", function () {
        if (sending) { return; }
        boxes[index] = onFile ? [] : null;  // [] removes the box on file; null would keep it
        draw(null);
        keepBoxes();
        refresh();
      });
    }
  }
  marks.forEach(markable);
  if (restored) { keepBoxes(); }

  function refresh() {
    if (files.required) {  // the fallback field without DataTransfer: it sends itself
      send.disabled = !marked();
      sendHint.hidden = marked();
      return;
    }
    send.disabled = sending || taken.length < least || recorder !== null || !marked();
    shoot.disabled = sending || taken.length >= most;
    // Why Send is grey, where it is: a buyer with its photos taken and no box drawn read
    // "enough photos: send them" beside a button that did nothing (a walkthrough).
    sendHint.hidden = sending || marked() || taken.length < least;
    if (!fallback.hidden) { files.hidden = taken.length >= most; }
    document.getElementById("shot-count").textContent = String(taken.length);
  }

  // A taken photo joins the others: kept as a File, shown as a small canvas with a button that
  // takes it out again (a blurred shot had to wait for a reload to go: a walkthrough).
  function keep(file, canvas) {
    // A photo that arrives late (the camera's encoder, a decode) past the number asked for, or
    // while the others are on their way, is not kept: it would show and never be sent.
    if (taken.length >= most || sending) { return; }
    taken.push(file);
    canvas.className = "shot";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", (form.dataset.shotLabel || "photo") + " " + taken.length);
    var tile = document.createElement("div");
    tile.className = "shot-tile";
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove-shot";
    remove.textContent = "\u00d7";
    remove.setAttribute("aria-label", form.dataset.removeLabel || "remove");
    remove.addEventListener("click", function () {
      if (sending) { return; }
      var at = taken.indexOf(file);
      if (at >= 0) { taken.splice(at, 1); }
      tile.remove();
      say(!taken.length ? (stream ? "ready" : "noCamera") :
        !marked() && taken.length >= least ? "needMark" : "another");
      refresh();
    });
    tile.appendChild(canvas);
    tile.appendChild(remove);
    shots.appendChild(tile);
    say(!marked() && taken.length >= least ? "needMark" : taken.length >= most ? "enough" : "another");
    refresh();
  }

  // The fallback field's photo, drawn without a blob: URL (the page's CSP shows none).
  function keepFromField(file) {
    var canvas = document.createElement("canvas");
    if (typeof window.createImageBitmap !== "function") { keep(file, canvas); return; }
    window.createImageBitmap(file).then(function (bitmap) {
      var scale = Math.min(1, 480 / Math.max(bitmap.width, bitmap.height));
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      keep(file, canvas);
    }, function () { keep(file, canvas); });  // a format the browser cannot draw still goes
  }

  function canCollect() {
    try { return typeof window.DataTransfer === "function" && Boolean(new DataTransfer().items); } catch (e) { return false; }
  }

  // The first container this browser records: Chromium and Firefox give webm, Safari mp4.
  function clipType() {
    var types = ["video/webm;codecs=vp8", "video/webm;codecs=vp9", "video/webm", "video/mp4"];
    for (var i = 0; i < types.length; i += 1) {
      if (MediaRecorder.isTypeSupported(types[i])) { return types[i]; }
    }
    return "";
  }

  function offerClip() {
    if (!record || !clipField || clipSeconds <= 0 || typeof window.MediaRecorder !== "function") {
      return;
    }
    document.getElementById("clip-row").hidden = false;
    var step = document.getElementById("clip-step");
    if (step) { step.hidden = false; }
  }

  function stopClip() {
    if (ticking !== null) { clearInterval(ticking); ticking = null; }
    if (recorder && recorder.state !== "inactive") { recorder.stop(); }
  }

  function startClip() {
    var type = clipType();
    var options = { videoBitsPerSecond: 2500000 };
    if (type) { options.mimeType = type; }
    var chunks = [];
    try {
      recorder = new MediaRecorder(stream, options);
    } catch (error) {
      recorder = null;
      say("clipFailed");
      return;
    }
    var started = Date.now();
    recorder.addEventListener("dataavailable", function (event) {
      if (event.data && event.data.size) { chunks.push(event.data); }
    });
    recorder.addEventListener("error", function () { stopClip(); });
    recorder.addEventListener("stop", function () {
      record.classList.remove("recording");
      var kind = ((recorder && recorder.mimeType) || type || "video/webm").split(";")[0];
      var blob = new Blob(chunks, { type: kind });
      recorder = null;
      record.textContent = form.dataset.againLabel || record.textContent;
      if (!blob.size) {
        say("clipFailed");
      } else if (clipBytes && blob.size > clipBytes) {
        say("clipTooLarge");
      } else {
        clip = new File([blob], kind === "video/mp4" ? "clip.mp4" : "clip.webm", { type: kind });
        say("recorded");
      }
      refresh();
    });
    clip = null;
    recorder.start();
    record.textContent = form.dataset.stopLabel || record.textContent;
    record.classList.add("recording");
    say("recording");
    refresh();
    ticking = setInterval(function () {
      var seconds = (Date.now() - started) / 1000;
      document.getElementById("clip-time").textContent = String(Math.min(clipSeconds, Math.floor(seconds)));
      if (seconds >= clipSeconds) { stopClip(); }
    }, 200);
  }

  if (record) {
    record.addEventListener("click", function () {
      if (recorder) { stopClip(); } else if (stream) { startClip(); }
    });
  }

  function useFallback() {
    video.hidden = true;
    shoot.hidden = true;
    fallback.hidden = false;
    files.hidden = false;
    if (canCollect()) {
      files.addEventListener("change", function () {
        var chosen = Array.prototype.slice.call(files.files || []);
        files.value = "";  // the field is offered again for the next photo
        chosen.slice(0, Math.max(0, most - taken.length)).forEach(keepFromField);
      });
    } else {
      files.required = true;
    }
    say("noCamera");
    refresh();
  }

  shoot.addEventListener("click", function () {
    if (!video.videoWidth || video.readyState < 2 || taken.length >= most) { return; }
    if (!cameraInView) {
      // Not blind: the tap brings the camera's picture on screen; the next one takes the photo.
      video.scrollIntoView({ block: "start" });
      say("toCamera");
      return;
    }
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      if (!blob) { return; }
      shotsTaken += 1;  // names stay apart after a photo is taken out
      keep(new File([blob], "live-" + shotsTaken + ".jpg", { type: "image/jpeg" }), canvas);
    }, "image/jpeg", 0.92);
  });

  var errorLine = document.getElementById("capture-error");
  var progressRow = document.getElementById("send-progress-row");

  function showError(text, code) {
    errorLine.textContent = text;
    if (code) {
      var small = document.createElement("small");
      small.className = "note";
      small.textContent = " (" + code + ")";
      errorLine.appendChild(small);
    }
    errorLine.hidden = false;
    if (errorLine.scrollIntoView) { errorLine.scrollIntoView({ block: "center" }); }
  }

  function unlock() {
    sending = false;
    progressRow.hidden = true;
    lockMarks(false);
    if (record) { record.disabled = false; }
    say(taken.length ? (taken.length >= most ? "enough" : "another") : (stream ? "ready" : "noCamera"));
    refresh();
  }

  // The photos were refused for what they are (a replay, too large, not new): they go, and
  // the buyer takes new ones. The box stays.
  function forget() {
    taken = [];
    shots.textContent = "";
    refresh();
  }

  // Received, or the link is spent: the form goes, the sentence stays, the camera closes.
  function finish(received, text) {
    if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); }
    taken = [];  // nothing is left to lose: the language links no longer ask
    forgetBoxes();
    form.hidden = true;
    errorLine.hidden = true;
    var intro = document.getElementById("capture-intro");
    if (intro) { intro.hidden = true; }  // "send the photos by ..." no longer asks anything
    var line = document.createElement("p");
    line.id = received ? "capture-done" : "capture-closed";
    line.className = received ? "done" : "";
    line.setAttribute("role", "status");
    line.textContent = text;
    form.parentNode.insertBefore(line, form);
    if (!form.dataset.signedIn) {
      // Opened from a message, with no session: the signed-in pages would ask for a key.
      var note = document.createElement("p");
      note.id = "capture-close-note";
      note.className = "note";
      note.textContent = (received ? form.dataset.closeNote : form.dataset.closedNote) || "";
      form.parentNode.insertBefore(note, form);
      return;
    }
    var back = document.createElement("a");
    if (received && form.dataset.claim) {
      back.id = "back-to-claim";
      back.href = "/web/claims/" + encodeURIComponent(form.dataset.claim);
      back.textContent = form.dataset.backLabel || back.href;
    } else {  // the link is spent: the buyer's claims say what is still asked
      back.id = "to-claims";
      back.href = "/web/";
      back.textContent = form.dataset.claimsLabel || back.href;
    }
    var row = document.createElement("p");
    row.appendChild(back);
    form.parentNode.insertBefore(row, form);
  }

  // Sent by the script, not as a form: the buyer sees the upload's progress (a phone on a slow
  // network took minutes with no sign of life: a walkthrough), and a refusal leaves the page as
  // it was, box and photos, where the refusal says nothing against the photos.
  function sendAll() {
    var body = new FormData();
    taken.slice(0, most).forEach(function (file) { body.append("photos", file, file.name); });
    if (clip) { body.append("clip", clip, clip.name); }
    if (boxesField) { body.append("damage_boxes", boxesField.value); }
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable || !event.total) { return; }
      var share = Math.min(100, Math.round(100 * event.loaded / event.total));
      document.getElementById("send-progress").value = share;
      document.getElementById("send-percent").textContent = String(share);
    });
    var answered = false;
    request.addEventListener("load", function () {
      answered = true;
      var answer = null;
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = null; }
      if (answer && typeof answer.outcome !== "string" && answer.error) {
        // Refused before the page's route ran (the upload over its size limit): the API's shape.
        var code = String(answer.error.code || "");
        var big = code === "request.too_large";
        var busy = code === "request.rate_limited" || code === "service.busy";
        answer = { outcome: "refused", code: code, keep_photos: !big, keep_clip: !big,
          message: big ? form.dataset.tooBig : busy ? form.dataset.busy : form.dataset.unusable };
      }
      if (!answer || typeof answer.outcome !== "string") {
        unlock();
        showError(form.dataset.unusable || "", "HTTP " + request.status);
        return;
      }
      if (answer.outcome === "received") { finish(true, form.dataset.received || ""); return; }
      if (answer.outcome === "closed") {
        finish(false, (answer.message ? String(answer.message) + " " : "") +
          (answer.code === "capture.app_required" ? "" : (form.dataset.closed || "")));
        return;
      }
      var clipGone = clip !== null && !answer.keep_clip;
      if (clipGone) { clip = null; }
      if (!answer.keep_photos) { forget(); }
      unlock();
      showError(String(answer.message || "") +
        (clipGone && answer.keep_photos ? " " + (form.dataset.clipDropped || "") : ""),
        answer.code ? String(answer.code) : "");
    });
    // A lost connection, an abort, a timeout: everything stays, to send again.
    request.addEventListener("loadend", function () {
      if (answered) { return; }
      unlock();
      showError(form.dataset.offline || "");
    });
    document.getElementById("send-progress").value = 0;
    document.getElementById("send-percent").textContent = "0";
    progressRow.hidden = false;
    errorLine.hidden = true;
    request.send(body);
  }

  form.addEventListener("submit", function (event) {
    if (!marked()) {
      event.preventDefault();
      say("needMark");
      return;
    }
    if (files.required) { return; }  // the fallback field without DataTransfer sends itself
    event.preventDefault();
    if (taken.length < least || recorder !== null) { return; }
    if (sending) { return; }
    sending = true;
    lockMarks(true);
    send.disabled = true;
    shoot.disabled = true;
    if (record) { record.disabled = true; }
    say("sending");
    sendAll();
  });

  // A photo is taken while at least half the camera's picture is on screen (a walkthrough took
  // one blind, the camera below the screen's edge).
  if (typeof window.IntersectionObserver === "function") {
    new IntersectionObserver(function (entries) {
      cameraInView = entries[entries.length - 1].intersectionRatio >= 0.5;
      form.dataset.cameraInView = cameraInView ? "yes" : "no";  // for the page's tests
      refresh();
    }, { threshold: [0, 0.5, 1] }).observe(video);
  }

  // The language links reload the page: the box survives (sessionStorage), the photos cannot.
  ["lang-zh", "lang-en"].forEach(function (id) {
    var link = document.getElementById(id);
    if (!link) { return; }
    link.addEventListener("click", function (event) {
      if (taken.length && !form.hidden && !window.confirm(form.dataset.langLoses || "")) {
        event.preventDefault();
      }
    });
  });

  // Last: the handlers above are in place before the page knows whether it has a camera.
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    useFallback();
    return;
  }
  navigator.mediaDevices
    .getUserMedia({ video: { facingMode: { ideal: "environment" }, width: { ideal: 1920 } }, audio: false })
    .then(function (opened) {
      stream = opened;
      video.srcObject = stream;
      video.hidden = false;
      // The button shows once a frame is on screen: a shot taken before it is black (and
      // refused as capture.blank).
      video.addEventListener("playing", function () { shoot.hidden = false; refresh(); }, { once: true });
      video.play().catch(function () { /* autoplay: "playing" still comes with the stream */ });
      offerClip();
      say("ready");
      refresh();
    })
    .catch(function () { useFallback(); });
})();
