// fol station: progress of a measurement. Served from the package; no external code.
// Without JavaScript the forms still work (the progress page refreshes itself).
"use strict";
(function () {
  function poll(jobId, bar, phase) {
    var started = Date.now();
    function tick() {
      fetch("/api/job/" + encodeURIComponent(jobId), {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (j) {
          if (j.phase === "done") { window.location.assign("/m/" + j.measurement_id); return; }
          if (j.phase === "failed" || j.error) { window.location.assign("/job/" + encodeURIComponent(jobId)); return; }
          var label = {queued: "Starting", connecting: "Connecting to the instrument", integrating: "Instrument integrating",
                       recording: "Recording the evidence", analysing: "Analysing"}[j.phase] || j.phase;
          var frac = 0.95;
          if (j.phase === "integrating" && j.expected_s > 0) { frac = Math.min(0.9, j.elapsed_s / j.expected_s * 0.9); }
          else if (j.phase === "connecting" || j.phase === "queued") { frac = 0.02; }
          if (bar) { bar.style.width = Math.round(frac * 100) + "%"; }
          if (phase) { phase.textContent = label + (j.phase === "integrating" ? " (" + j.elapsed_s.toFixed(1) + " of " + j.expected_s.toFixed(1) + " s)" : ""); }
          setTimeout(tick, j.phase === "integrating" && j.expected_s - j.elapsed_s > 1 ? 250 : 60);
        })
        .catch(function () { setTimeout(tick, 500); });
    }
    tick();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("measure-form");
    if (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var button = document.getElementById("measure");
        var progress = document.getElementById("progress");
        button.disabled = true;
        progress.hidden = false;
        fetch(form.action, {method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
                            headers: {"Accept": "application/json"}})
          .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, j: j}; }); })
          .then(function (res) {
            if (!res.ok) {
              button.disabled = false; progress.hidden = true;
              var box = document.getElementById("form-error");
              if (!box) { box = document.createElement("div"); box.id = "form-error"; box.className = "banner caution"; form.parentNode.insertBefore(box, form); }
              box.textContent = "Not measured: " + res.j.error;  // text, never HTML
              return;
            }
            poll(res.j.job, document.getElementById("bar"), document.getElementById("phase"));
          })
          .catch(function () { form.submit(); });
      });
    }
    var job = document.getElementById("job");
    if (job && job.dataset.job && document.getElementById("bar")) {
      poll(job.dataset.job, document.getElementById("bar"), document.getElementById("phase"));
    }
  });
})();
