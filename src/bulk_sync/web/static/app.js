// bulk-sync ops page: the drop zone and the live progress of a run. Everything works
// without this script (forms post, the run page refreshes itself); it only adds comfort.
"use strict";

(function () {
  function formatNumber(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : String(n);
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "unknown";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s";
    var m = Math.floor(seconds / 60), s = seconds % 60;
    if (m < 60) return m + " min " + String(s).padStart(2, "0") + " s";
    return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
  }

  // -- uploads: drop files on the zone; check type and size before sending ------------
  function setupUpload(form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector(".dropzone");
    var error = form.querySelector(".error");
    var max = parseInt(form.dataset.max, 10);
    var accepted = (form.dataset.accept || "").split(",");

    function problem(files) {
      var total = 0;
      for (var i = 0; i < files.length; i++) {
        var name = files[i].name, dot = name.lastIndexOf(".");
        var ext = dot >= 0 ? name.slice(dot).toLowerCase() : "";
        if (accepted.indexOf(ext) < 0) {
          return name + ": not a spreadsheet this tool reads (CSV, TSV, XLSX, XLS or ODS).";
        }
        total += files[i].size;
      }
      if (total > max) {
        return "Too large: these files make " + (total / 1048576).toFixed(1) +
          " MB, and the limit is " + Math.round(max / 1048576) + " MB at a time.";
      }
      return "";
    }
    function show(message) {
      error.textContent = message;
      error.hidden = !message;
    }
    form.addEventListener("submit", function (event) {
      var message = input.files.length ? problem(input.files) : "Choose one or more files first.";
      if (message) {
        event.preventDefault();
        show(message);
        input.focus();
      }
    });
    input.addEventListener("change", function () { show(""); });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      input.files = event.dataTransfer.files;
      var message = problem(input.files);
      show(message);
      if (!message) form.requestSubmit();
    });
  }

  // -- the column mapping: grey out what a wide layout does not use --------------------
  function setupMapping(form) {
    function update() {
      var wide = form.querySelector("input[name=layout][value=wide]").checked;
      form.classList.toggle("wide", wide);
      form.querySelectorAll(".field[data-layout=long] select").forEach(function (s) {
        s.disabled = wide;
      });
    }
    form.querySelectorAll("input[name=layout]").forEach(function (r) {
      r.addEventListener("change", update);
    });
    update();
  }

  // -- a run's progress, streamed from the server ---------------------------------------
  var STATES = {
    "loading": "Reading the files…",
    "checking": "Checking the rows…",
    "sending": "Sending…",
    "stopping": "Stopping: requests on the way get a few seconds, then the rest is marked not_sent…",
    "writing report": "Writing the report…",
    "finished": "Finished.",
    "failed": "Could not run."
  };
  var BREAKER = {
    "closed": "available",
    "open": "unavailable: waiting before trying again",
    "probing": "testing whether it is back"
  };

  function setupProgress(section) {
    var bar = section.querySelector("progress");
    var live = section.querySelector("#live");
    var lastSpoken = 0, lastState = "";

    function set(field, text) {
      section.querySelectorAll("[data-field=" + field + "]").forEach(function (el) {
        el.textContent = text;
      });
    }
    function speak(s, force) {
      var now = Date.now();
      if (!force && now - lastSpoken < 10000) return;
      lastSpoken = now;
      var text = (STATES[s.state] || s.state) + " " + formatNumber(s.rows_done) + " of " +
        formatNumber(s.rows_total) + " rows done, " + formatNumber(s.failed) + " failed.";
      if (s.breaker && s.breaker !== "closed") text += " The API is " + BREAKER[s.breaker] + ".";
      live.textContent = text;
    }
    function update(s) {
      set("state_text", STATES[s.state] || s.state);
      ["rows_done", "rows_total", "ok", "failed", "customers_done", "customers_total",
        "requests", "retries"].forEach(function (k) { set(k, formatNumber(s[k])); });
      set("throttled_text", s.throttled === 1 ? "once" : formatNumber(s.throttled) + " times");
      set("rate", String(s.rate));
      set("eta_text", duration(s.eta));
      set("elapsed_text", duration(s.elapsed));
      if (s.flow) {
        var flow = s.flow.in_flight + " (up to " + s.flow.window + " at a time";
        if (s.flow.window < s.flow.ceiling) flow += ", reduced from " + s.flow.ceiling;
        set("flow_text", flow + ")");
      }
      var breaker = BREAKER[s.breaker] || s.breaker;
      var flowState = s.flow || {};
      var since = flowState.unavailable_since || s.unavailable_since;
      var next = flowState.next_try_in !== undefined && flowState.next_try_in !== null ? flowState.next_try_in : s.next_try_in;
      if (s.breaker !== "closed" && since) {
        // In UTC, as every other time on the page (the browser's zone may differ).
        breaker += " since " + new Date(since * 1000).toISOString().slice(11, 19) + " UTC";
      }
      if (s.breaker === "open" && next) breaker += "; next try in " + Math.round(next) + " s";
      if (flowState.paused_seconds) breaker += " (paused " + duration(flowState.paused_seconds) + " so far)";
      set("breaker_text", breaker);
      bar.max = s.rows_total || 1;
      bar.value = s.rows_done;
      if (s.state === "stopping") {
        var stop = section.querySelector("form.stop button");
        if (stop) stop.disabled = true;
      }
      speak(s, s.state !== lastState);
      lastState = s.state;
    }
    var source = new EventSource(section.dataset.events);
    source.addEventListener("progress", function (event) {
      section.classList.remove("lost");
      update(JSON.parse(event.data));
    });
    // The server went away (restarted, network): say so instead of showing the last
    // numbers as if they were live. EventSource tries again by itself; a stream it
    // gave up on (the server answered with an error) needs a reload.
    source.addEventListener("error", function () {
      var text = source.readyState === EventSource.CLOSED
        ? "Lost contact with the server: reload the page to see where the run is."
        : "Lost contact with the server: trying again… (the numbers below are from before)";
      section.classList.add("lost");
      set("state_text", text);
      live.textContent = text;
      lastState = "lost";
    });
    source.addEventListener("finished", function () {
      source.close();
      window.location.reload();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.upload").forEach(setupUpload);
    document.querySelectorAll("form.mapping").forEach(setupMapping);
    var progress = document.querySelector("section.progress[data-events]");
    if (progress && window.EventSource) setupProgress(progress);
  });
})();
