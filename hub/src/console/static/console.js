// chaoshub console: live updates and editor conveniences. Every page works without this file.
"use strict";
(function () {
  // Forms that ask before acting (delete).
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
    }
  });

  // Live pages: the hub's event stream says when something changed; the page then fetches its
  // own URL again and swaps its <main>, so what is shown is always what the server renders.
  function live() {
    var main = document.querySelector("main[data-live]");
    var marker = document.getElementById("rendered-at");
    if (!main || !marker || !window.EventSource) {
      return;
    }
    var state = document.getElementById("live-state");
    var since = marker.getAttribute("data-since");
    var source = new EventSource("/console/events?since=" + encodeURIComponent(since));
    var timer = null;
    var busy = false;
    var again = false;
    function refresh() {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected || !r.ok) {
            throw new Error("status " + r.status);
          }
          return r.text();
        })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.querySelector("main");
          var current = document.querySelector("main");
          if (fresh && current) {
            var focused = document.activeElement && document.activeElement.id;
            current.replaceWith(fresh);
            if (focused) {
              var el = document.getElementById(focused);
              if (el) el.focus();
            }
          }
        })
        .catch(function () {})
        .then(function () {
          busy = false;
          if (again) {
            again = false;
            schedule();
          }
        });
    }
    function schedule() {
      if (timer) {
        clearTimeout(timer);
      }
      timer = setTimeout(refresh, 250);
    }
    source.onopen = function () {
      if (state) state.className = "on";
    };
    source.onerror = function () {
      if (state) state.className = "";
    };
    source.onmessage = schedule;
    // The hub's event names (hub/src/events.rs; a unit test keeps this list complete): named
    // server-sent events reach only listeners of their name.
    [
      "chaoshub.experiment.created", "chaoshub.experiment.injecting",
      "chaoshub.experiment.running", "chaoshub.experiment.paused", "chaoshub.experiment.resumed",
      "chaoshub.experiment.recovering", "chaoshub.experiment.finished",
      "chaoshub.experiment.failed", "chaoshub.experiment.aborted", "chaoshub.experiment.archived",
      "chaoshub.experiment.pause_requested", "chaoshub.experiment.resume_requested",
      "chaoshub.experiment.stop_requested", "chaoshub.experiment.waiting",
      "chaoshub.target.injected", "chaoshub.target.recovered", "chaoshub.target.failed",
      "chaoshub.target.drifted", "chaoshub.target.reinjected", "chaoshub.halt.set",
      "chaoshub.halt.released", "chaoshub.environment.registered", "chaoshub.environment.deleted",
      "chaoshub.hub.started", "chaoshub.schedule.fired", "chaoshub.schedule.missed",
      "chaoshub.schedule.skipped", "chaoshub.schedule.run_failed",
      "chaoshub.workflow.node_started", "chaoshub.workflow.node_ended",
      "chaoshub.suite.progress", "chaoshub.suite.finished"
    ].forEach(function (name) {
      source.addEventListener(name, schedule);
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  // The manifest editor: line numbers beside the text, and the lines named by validation errors
  // marked (errors carry field paths; the first key of the path found in the text is marked).
  function editor() {
    var area = document.getElementById("yaml");
    if (!area) {
      return;
    }
    var gutter = document.createElement("div");
    gutter.className = "gutter";
    gutter.setAttribute("aria-hidden", "true");
    area.parentNode.insertBefore(gutter, area);
    var marked = {};
    document.querySelectorAll(".field-errors li[data-path]").forEach(function (li) {
      var path = li.getAttribute("data-path");
      var keys = path.replace(/\[\d+\]/g, "").split(".").filter(Boolean);
      var lines = area.value.split("\n");
      var from = 0;
      var found = -1;
      keys.forEach(function (key) {
        for (var i = from; i < lines.length; i++) {
          if (lines[i].replace(/^\s*-?\s*/, "").indexOf(key + ":") === 0) {
            found = i;
            from = i + 1;
            return;
          }
        }
      });
      if (found >= 0) {
        marked[found] = true;
        li.appendChild(document.createTextNode(" (line " + (found + 1) + ")"));
      }
    });
    function render() {
      var n = area.value.split("\n").length;
      var out = [];
      for (var i = 0; i < n; i++) {
        out.push(marked[i] ? "<span class=\"err\">" + (i + 1) + "</span>" : String(i + 1));
      }
      gutter.innerHTML = out.join("\n");
      gutter.scrollTop = area.scrollTop;
    }
    area.addEventListener("input", render);
    area.addEventListener("scroll", function () {
      gutter.scrollTop = area.scrollTop;
    });
    render();
  }

  // "Time left" counts down to the deadline the server rendered. The page's arrival time (the
  // server's clock) gives the offset to this browser's clock, so a skewed client still shows
  // the hub's figure. A live refresh swaps <main>, so the elements are looked up on each tick.
  function countdowns() {
    var marker = document.getElementById("rendered-at");
    var serverAt = marker ? Date.parse(marker.getAttribute("data-since")) : NaN;
    var offset = isNaN(serverAt) ? 0 : serverAt - Date.now();
    function text(ms) {
      var s = Math.floor(Math.max(0, ms) / 1000);
      function two(n) { return (n < 10 ? "0" : "") + n; }
      if (s >= 3600) return Math.floor(s / 3600) + "h " + two(Math.floor((s % 3600) / 60)) + "m";
      if (s >= 60) return Math.floor(s / 60) + "m " + two(s % 60) + "s";
      return s + "s";
    }
    setInterval(function () {
      document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
        var deadline = Date.parse(el.getAttribute("data-deadline"));
        if (!isNaN(deadline)) {
          el.textContent = text(deadline - (Date.now() + offset));
        }
      });
    }, 1000);
  }

  // A template's form: each change (debounced) posts the form as Preview, exactly as the
  // Preview button does, and shows the rendered manifest (or the refusal naming the parameter)
  // from the page the server sends back. Only the latest answer is shown.
  function templatePreview() {
    var form = document.getElementById("template-form");
    var result = document.getElementById("template-result");
    if (!form || !result || !window.fetch || !window.URLSearchParams) {
      return;
    }
    var timer = null;
    var latest = 0;
    function preview() {
      var data = new URLSearchParams(new FormData(form));
      data.set("op", "preview");
      data.set("live", "1");
      var mine = ++latest;
      fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
        body: data
      })
        .then(function (r) { return r.text(); })
        .then(function (text) {
          if (mine !== latest) return;
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById("template-result");
          if (fresh) result.innerHTML = fresh.innerHTML;
        })
        .catch(function () {});
    }
    function later() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(preview, 300);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    if (!result.firstChild) preview();
  }

  live();
  editor();
  countdowns();
  templatePreview();
})();
