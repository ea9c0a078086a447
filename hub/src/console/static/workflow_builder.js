// chaoshub workflow builder: draws the document of workflow_model.js and turns pointer, keyboard
// and form events into its edits. Pointer events (not HTML5 drag and drop) carry the drags, so
// mouse, pen and touch work alike, and every drag has a keyboard equivalent.
"use strict";
(function () {
  var M = window.WorkflowModel;
  var root = document.getElementById("builder");
  if (!root || !M) {
    return;
  }
  var data = JSON.parse(document.getElementById("builder-data").textContent);
  var csrf = root.getAttribute("data-csrf");
  var canvas = document.getElementById("canvas");
  var inspector = document.getElementById("inspector");
  var wfFields = document.getElementById("wf-fields");
  var yaml = document.getElementById("wf-yaml");
  var yamlState = document.getElementById("yaml-state");
  var msg = document.getElementById("builder-msg");
  var result = document.getElementById("wf-result");
  var run = document.getElementById("wf-run");

  var state = {
    doc: M.empty("my-workflow"),
    selected: null, // {path: [..] or null (a template outside the tree), name}
    catalog: {}, // template name -> {template: catalog name, parameters: {...}}
    details: {}, // catalog name -> its detail (typed parameters), once fetched
    errors: {}, // template name -> [{field, message}] from the API
    notes: {}, // template name -> [text] from a dry run
    phases: {}, // template name -> phase of the started workflow
    marks: [], // fields marked as template parameters (workflow_model.js, "template parameters")
    run: null // {uid, source, timer}
  };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function say(text, bad) {
    msg.textContent = text || "";
    msg.className = bad ? "hint bad" : "hint";
  }

  function call(method, url, body, type) {
    var headers = { "X-CSRF-Token": csrf, "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = type || "application/json";
    return fetch(url, { method: method, credentials: "same-origin", headers: headers, body: body })
      .then(function (r) {
        return r.text().then(function (t) {
          var v;
          try {
            v = JSON.parse(t);
          } catch (e) {
            v = { message: t };
          }
          return { ok: r.ok, status: r.status, body: v };
        });
      });
  }

  // ---- palette -------------------------------------------------------------------------------
  var PALETTE = [
    { type: "Serial", label: "Serial", hint: "children one after another" },
    { type: "Parallel", label: "Parallel", hint: "children at the same time" },
    { type: "Suspend", label: "Suspend", hint: "wait for its deadline" },
    { type: "StatusCheck", label: "Status check (HTTP)", hint: "probe a URL" },
    { type: "NetworkChaos", label: "Fault (manifest)", hint: "any chaos kind, spec as YAML", fault: true }
  ];

  function paletteButton(attrs, label, hint) {
    var li = el("li");
    var b = el("button", Object.assign({ type: "button", "class": "pal-item", "data-drag": "new" }, attrs));
    b.appendChild(el("span", {}, label));
    if (hint) b.appendChild(el("small", {}, hint));
    li.appendChild(b);
    return li;
  }

  function drawPalette() {
    var list = document.getElementById("palette");
    PALETTE.forEach(function (p) {
      list.appendChild(paletteButton({ "data-type": p.type, "data-fault": p.fault ? "raw" : null }, p.label, p.hint));
    });
    var cat = document.getElementById("palette-catalog");
    data.templates.forEach(function (t) {
      cat.appendChild(paletteButton({ "data-type": t.kind, "data-template": t.name }, t.title, t.name + " · " + t.kind));
    });
    document.getElementById("pal-filter").addEventListener("input", function (ev) {
      var q = ev.target.value.toLowerCase();
      cat.querySelectorAll("li").forEach(function (li) {
        li.hidden = q !== "" && li.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
    root.querySelectorAll(".pal-item").forEach(function (b) {
      b.addEventListener("click", function (ev) {
        if (suppressClick) return;
        add(b, ev.shiftKey ? "after" : "auto");
      });
      b.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && ev.shiftKey) {
          ev.preventDefault();
          add(b, "after");
        }
      });
    });
  }

  // A new template for a palette item (a catalog fault is rendered with its defaults first).
  function templateFor(item) {
    var type = item.getAttribute("data-type");
    var name = item.getAttribute("data-template");
    if (!name) {
      var opts = {};
      if (item.getAttribute("data-fault")) {
        opts = { name: "fault", spec: { action: "delay", mode: "all", selector: { labelSelectors: { app: "web" } }, delay: { latency: "100ms" } } };
      }
      return Promise.resolve({ t: M.newTemplate(state.doc, type, opts) });
    }
    return call("POST", "/console/builder/templates/" + encodeURIComponent(name) + "/render", JSON.stringify({ parameters: {} }))
      .then(function (r) {
        if (!r.ok) throw new Error(r.body.message || "the template does not render");
        var m = r.body.manifest;
        var t = M.newTemplate(state.doc, m.kind, { name: name.split("/").pop(), spec: m.spec });
        return { t: t, catalog: { template: name, parameters: r.body.parameters || {} } };
      });
  }

  // Where a keyboard/click add goes: inside the selected Serial/Parallel ("auto"), else after
  // the selected node; an empty canvas takes it as the entry.
  function addTarget(how) {
    if (!state.doc.spec.entry) return { parent: null, index: 0 };
    var sel = state.selected && state.selected.path;
    if (!sel) {
      var entry = M.at(state.doc, []);
      if (M.isContainer(entry)) return { parent: [], index: entry.children.length };
      throw new Error("select a node first: new nodes go inside or after it");
    }
    var t = M.at(state.doc, sel);
    if (how === "auto" && M.isContainer(t)) return { parent: sel, index: t.children.length };
    if (sel.length === 0) throw new Error("the entry node has no siblings; select a Serial or Parallel to add inside");
    return { parent: sel.slice(0, -1), index: sel[sel.length - 1] + 1 };
  }

  function add(item, how) {
    var where;
    try {
      where = addTarget(how);
    } catch (e) {
      say(e.message, true);
      return;
    }
    dropNew(item, where);
  }

  function dropNew(item, where) {
    templateFor(item).then(function (made) {
      var path = M.insert(state.doc, made.t, where.parent, where.index);
      if (made.catalog) state.catalog[made.t.name] = made.catalog;
      select(path, made.t.name);
      changed("added " + made.t.name);
    }).catch(function (e) {
      say(e.message, true);
    });
  }

  // ---- canvas --------------------------------------------------------------------------------
  function pathKey(path) {
    return path === null ? "-" : path.join(".");
  }
  function keyPath(key) {
    return key === "-" ? null : key === "" ? [] : key.split(".").map(Number);
  }

  function slot(parentPath, index) {
    return el("div", { "class": "slot", "data-parent": pathKey(parentPath), "data-index": String(index), "aria-hidden": "true" });
  }

  function drawNode(n, container) {
    var t = n.template;
    var selected = state.selected && (n.path ? M.samePath(state.selected.path, n.path) : (!state.selected.path && state.selected.name === n.name));
    var box = el("div", {
      "class": "node" + (t && M.isContainer(t) ? " container type-" + t.templateType.toLowerCase() : "") + (n.branch ? " branch" : "") + (selected ? " selected" : ""),
      role: "treeitem",
      tabindex: selected ? "0" : "-1",
      "aria-selected": selected ? "true" : "false",
      "data-name": n.name,
      "data-path": n.path ? pathKey(n.path) : null
    });
    var head = el("div", { "class": "node-head", "data-drag": n.path && n.path.length ? "move" : null });
    head.appendChild(el("span", { "class": "node-type" }, t ? t.templateType : "missing"));
    head.appendChild(el("span", { "class": "node-name" }, n.name));
    if (n.branch) head.appendChild(el("span", { "class": "node-branch" }, "when " + n.branch));
    if (t && t.deadline) head.appendChild(el("span", { "class": "node-deadline" }, "deadline " + t.deadline));
    var marked = state.marks.filter(function (m) { return m.template === n.name; }).length;
    if (marked) head.appendChild(el("span", { "class": "badge node-params", title: "fields marked as template parameters" }, marked + (marked === 1 ? " param" : " params")));
    var phase = state.phases[n.name];
    if (phase) head.appendChild(el("span", { "class": "badge node-phase phase-" + phase.toLowerCase() }, phase));
    box.appendChild(head);
    (state.errors[n.name] || []).forEach(function (e) {
      box.appendChild(el("p", { "class": "node-error", role: "alert" }, (e.field ? e.field + ": " : "") + e.message));
    });
    (state.notes[n.name] || []).forEach(function (text) {
      box.appendChild(el("p", { "class": "node-note" }, text));
    });
    if (t && (M.isContainer(t) || n.children.length)) {
      var kids = el("div", { "class": "node-children", role: "group" });
      var real = n.children.filter(function (c) { return !c.branch; });
      if (n.path && M.isContainer(t)) kids.appendChild(slot(n.path, 0));
      real.forEach(function (c, i) {
        drawNode(c, kids);
        if (n.path) kids.appendChild(slot(n.path, i + 1));
      });
      n.children.filter(function (c) { return c.branch; }).forEach(function (c) { drawNode(c, kids); });
      if (M.isContainer(t) && !real.length) kids.appendChild(el("p", { "class": "hint drop-here" }, "drop nodes here"));
      box.appendChild(kids);
    }
    container.appendChild(box);
  }

  function drawCanvas() {
    canvas.textContent = "";
    var tree = M.tree(state.doc);
    if (!tree) {
      canvas.appendChild(slot(null, 0));
      canvas.appendChild(el("p", { "class": "hint drop-here" }, "Drop the first node here (usually a Serial): it becomes the workflow's entry."));
    } else {
      drawNode(tree, canvas);
    }
    var apart = M.unreached(state.doc);
    if (apart.length) {
      var sec = el("div", { "class": "unreached" });
      sec.appendChild(el("p", { "class": "hint" }, "Templates the entry does not reach (drag them into the tree):"));
      apart.forEach(function (t) {
        var n = { name: t.name, template: t, path: null, children: [], branch: null };
        drawNode(n, sec);
        sec.lastChild.querySelector(".node-head").setAttribute("data-drag", "existing");
      });
      canvas.appendChild(sec);
    }
    if (!canvas.querySelector(".node[tabindex='0']")) {
      var first = canvas.querySelector(".node");
      if (first) first.setAttribute("tabindex", "0");
    }
  }

  function select(path, name) {
    state.selected = { path: path, name: name };
  }

  function selectedTemplate() {
    if (!state.selected) return null;
    return state.selected.path ? M.at(state.doc, state.selected.path) : M.find(state.doc, state.selected.name);
  }

  function focusSelected() {
    var s = canvas.querySelector(".node.selected");
    if (s) s.focus();
  }

  canvas.addEventListener("click", function (ev) {
    var node = ev.target.closest(".node");
    if (!node || suppressClick) return;
    select(keyPath(node.getAttribute("data-path") === null ? "-" : node.getAttribute("data-path")), node.getAttribute("data-name"));
    drawAll(false);
    focusSelected();
  });

  canvas.addEventListener("keydown", function (ev) {
    var node = ev.target.closest(".node");
    if (!node) return;
    var nodes = Array.prototype.slice.call(canvas.querySelectorAll(".node"));
    var i = nodes.indexOf(node);
    var op = null;
    if (ev.altKey && ev.key === "ArrowUp") op = "up";
    else if (ev.altKey && ev.key === "ArrowDown") op = "down";
    else if (ev.altKey && ev.key === "ArrowRight") op = "in";
    else if (ev.altKey && ev.key === "ArrowLeft") op = "out";
    else if (ev.key === "Delete" || ev.key === "Backspace") op = "delete";
    if (op) {
      ev.preventDefault();
      operate(op);
      return;
    }
    var next = null;
    if (ev.key === "ArrowDown") next = nodes[i + 1];
    else if (ev.key === "ArrowUp") next = nodes[i - 1];
    else if (ev.key === "Home") next = nodes[0];
    else if (ev.key === "End") next = nodes[nodes.length - 1];
    if (next) {
      ev.preventDefault();
      select(keyPath(next.getAttribute("data-path") === null ? "-" : next.getAttribute("data-path")), next.getAttribute("data-name"));
      drawAll(false);
      focusSelected();
    }
  });

  root.querySelectorAll(".canvas-tools button").forEach(function (b) {
    b.addEventListener("click", function () {
      operate(b.getAttribute("data-op"));
    });
  });

  // A keyboard/toolbar operation on the selected node.
  function operate(op) {
    var s = state.selected;
    if (!s || !s.path) {
      say("select a node in the tree first", true);
      return;
    }
    try {
      if (op === "delete") {
        M.remove(state.doc, s.path);
        var up = s.path.length ? s.path.slice(0, -1) : null;
        state.selected = up ? { path: up, name: M.at(state.doc, up).name } : null;
        changed("deleted " + s.name);
      } else {
        var to = M.moveBy(state.doc, s.path, op);
        if (!to) {
          say("cannot move " + s.name + " " + op, true);
          return;
        }
        select(to, s.name);
        changed("moved " + s.name + " " + op);
      }
      focusSelected();
    } catch (e) {
      say(e.message, true);
    }
  }

  // ---- pointer drag and drop -----------------------------------------------------------------
  var drag = null;
  var suppressClick = false;

  document.addEventListener("pointerdown", function (ev) {
    var src = ev.target.closest("[data-drag]");
    if (!src || ev.button !== 0 || !root.contains(src)) return;
    drag = { src: src, x: ev.clientX, y: ev.clientY, active: false, ghost: null, target: null };
  });

  document.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    if (!drag.active) {
      if (Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) < 5) return;
      drag.active = true;
      document.body.classList.add("dragging");
      drag.ghost = el("div", { "class": "drag-ghost", "aria-hidden": "true" }, drag.src.textContent.slice(0, 40));
      document.body.appendChild(drag.ghost);
    }
    ev.preventDefault();
    drag.ghost.style.left = ev.clientX + 12 + "px";
    drag.ghost.style.top = ev.clientY + 8 + "px";
    var t = dropTarget(ev.clientX, ev.clientY);
    canvas.querySelectorAll(".drop-target").forEach(function (x) { x.classList.remove("drop-target"); });
    if (t) t.el.classList.add("drop-target");
    drag.target = t;
  });

  document.addEventListener("pointerup", function () {
    if (!drag) return;
    var d = drag;
    drag = null;
    if (!d.active) return;
    document.body.classList.remove("dragging");
    d.ghost.remove();
    canvas.querySelectorAll(".drop-target").forEach(function (x) { x.classList.remove("drop-target"); });
    // The click that follows a drag is not a press of the dragged button.
    suppressClick = true;
    setTimeout(function () { suppressClick = false; }, 0);
    if (!d.target) {
      say("dropped outside the canvas: nothing changed");
      return;
    }
    drop(d.src, d.target.parent, d.target.index);
  });

  // The place under the pointer: a slot, or before/after a node by which half is hovered, or
  // the end of a hovered container's children.
  function dropTarget(x, y) {
    var under = document.elementFromPoint(x, y);
    if (!under || !canvas.contains(under)) return null;
    var s = under.closest(".slot");
    if (s) return { el: s, parent: keyPath(s.getAttribute("data-parent")), index: Number(s.getAttribute("data-index")) };
    var node = under.closest(".node[data-path]");
    if (!node) return null;
    var path = keyPath(node.getAttribute("data-path"));
    var head = node.querySelector(".node-head");
    var r = head.getBoundingClientRect();
    var t = M.at(state.doc, path);
    if (M.isContainer(t) && (y > r.bottom || path.length === 0)) {
      return { el: node, parent: path, index: t.children.length };
    }
    if (path.length === 0) return null;
    var after = y > r.top + r.height / 2;
    return { el: node, parent: path.slice(0, -1), index: path[path.length - 1] + (after ? 1 : 0) };
  }

  function drop(src, parent, index) {
    var kind = src.getAttribute("data-drag");
    try {
      if (kind === "new") {
        dropNew(src, { parent: parent, index: index });
        return;
      }
      var node = src.closest(".node");
      var name = node.getAttribute("data-name");
      var path;
      if (kind === "move") {
        path = M.move(state.doc, keyPath(node.getAttribute("data-path")), parent, index);
      } else {
        path = M.insert(state.doc, M.find(state.doc, name), parent, index);
      }
      select(path, name);
      changed("moved " + name);
    } catch (e) {
      say(e.message, true);
    }
  }

  // ---- side panel ----------------------------------------------------------------------------
  function field(container, label, fieldPath, input, help) {
    var id = "f-" + fieldPath.replace(/[^A-Za-z0-9]/g, "-");
    input.id = id;
    input.setAttribute("data-field", fieldPath);
    var wrap = el("div", { "class": "field" });
    wrap.appendChild(el("label", { "for": id }, label));
    wrap.appendChild(input);
    if (help) wrap.appendChild(el("small", {}, help));
    container.appendChild(wrap);
    return input;
  }

  function input(value, type) {
    var i = el("input", { type: type || "text", autocomplete: "off" });
    i.value = value === undefined || value === null ? "" : String(value);
    return i;
  }

  function choice(value, options) {
    var s = el("select");
    options.forEach(function (o) {
      var opt = el("option", { value: o }, o === "" ? "(none)" : o);
      if (String(value === undefined ? "" : value) === o) opt.selected = true;
      s.appendChild(opt);
    });
    return s;
  }

  // Marks the inputs the API's errors name (an error at `networkChaos.mode` marks the input of
  // `networkChaos`, the spec's text).
  function markErrors(t) {
    (state.errors[t.name] || []).forEach(function (e) {
      var best = null;
      inspector.querySelectorAll("[data-field]").forEach(function (i) {
        var f = i.getAttribute("data-field");
        if ((e.field === f || e.field.indexOf(f + ".") === 0) && (!best || f.length > best.getAttribute("data-field").length)) best = i;
      });
      if (best) {
        best.setAttribute("aria-invalid", "true");
        best.parentNode.appendChild(el("p", { "class": "field-error", role: "alert" }, e.field + ": " + e.message));
      }
    });
  }

  function drawInspector() {
    inspector.textContent = "";
    var t = selectedTemplate();
    if (!t) {
      inspector.appendChild(el("p", { "class": "empty" }, "Nothing selected."));
      return;
    }
    var name = field(inspector, "Name", "name", input(t.name));
    name.addEventListener("change", function () {
      var old = t.name;
      try {
        M.rename(state.doc, old, name.value.trim());
      } catch (e) {
        say(e.message, true);
        name.setAttribute("aria-invalid", "true");
        return;
      }
      ["catalog", "errors", "notes", "phases"].forEach(function (k) {
        if (old in state[k]) {
          state[k][t.name] = state[k][old];
          delete state[k][old];
        }
      });
      state.marks = M.renameMarks(state.marks, old, t.name);
      state.selected.name = t.name;
      changed("renamed " + old + " to " + t.name);
    });
    var chaos = M.chaosField(t);
    if (chaos) {
      var kind = field(inspector, "Kind", "templateType", choice(t.templateType, Object.keys(M.CHAOS)));
      kind.addEventListener("change", function () {
        M.setChaosKind(t, kind.value);
        delete state.catalog[t.name];
        changed("kind of " + t.name + " is " + kind.value);
      });
    } else {
      inspector.appendChild(el("p", {}, "Type: " + t.templateType));
    }
    var deadline = field(inspector, "Deadline", "deadline", input(t.deadline),
      t.templateType === "Suspend" ? "How long to wait (required), e.g. 30s." : "Longest the node may run, e.g. 5m (optional).");
    deadline.addEventListener("change", function () {
      M.set(t, "deadline", deadline.value.trim());
      changed("deadline of " + t.name);
    });
    if (t.templateType === "StatusCheck") drawStatusCheck(t);
    if (chaos && state.catalog[t.name]) drawParameters(t, chaos);
    if (chaos) drawSpec(t, chaos);
    if (!chaos && !M.isContainer(t) && ["Suspend", "StatusCheck"].indexOf(t.templateType) < 0) {
      inspector.appendChild(el("p", { "class": "hint" }, "Edit this template's other fields in the YAML below."));
    }
    drawMarks(t);
    markErrors(t);
  }

  // "Template parameters": which of this node's fields the saved template asks for. A select of
  // the node's fields, a name, and a button: all plain controls, so the keyboard does it all.
  function drawMarks(t) {
    var fields = M.leafFields(t);
    var mine = state.marks.filter(function (m) { return m.template === t.name; });
    if (!fields.length && !mine.length) return;
    var box = el("fieldset", { "class": "params", id: "mark-box" });
    box.appendChild(el("legend", {}, "Template parameters"));
    var list = el("ul", { "class": "plain", id: "mark-list" });
    mine.forEach(function (m) {
      var li = el("li", { "data-param": m.name });
      li.appendChild(el("code", {}, m.name));
      li.appendChild(document.createTextNode(" (" + m.type + ") ← " + m.field + " = " + String(M.get(t, m.field))));
      var b = el("button", { type: "button", "class": "secondary", "data-unmark": m.name, "aria-label": "Unmark parameter " + m.name }, "Unmark");
      b.addEventListener("click", function () {
        state.marks = M.unmark(state.marks, m.name);
        changed(m.name + " is no longer a parameter");
      });
      li.appendChild(document.createTextNode(" "));
      li.appendChild(b);
      list.appendChild(li);
    });
    box.appendChild(list);
    var free = fields.filter(function (f) {
      return !mine.some(function (m) { return m.field === f.field; });
    });
    if (free.length) {
      var wrap = el("div", { "class": "field" });
      wrap.appendChild(el("label", { "for": "mark-field" }, "Field"));
      var pick = el("select", { id: "mark-field" });
      free.forEach(function (f) {
        pick.appendChild(el("option", { value: f.field }, f.field + " = " + String(f.value)));
      });
      wrap.appendChild(pick);
      box.appendChild(wrap);
      var wrap2 = el("div", { "class": "field" });
      wrap2.appendChild(el("label", { "for": "mark-name" }, "Parameter name"));
      var name = input(M.suggestName(t.name, free[0].field));
      name.id = "mark-name";
      var typed = false;
      name.addEventListener("input", function () { typed = true; });
      pick.addEventListener("change", function () {
        if (!typed) name.value = M.suggestName(t.name, pick.value);
      });
      wrap2.appendChild(name);
      var hint = el("small", { id: "mark-type" });
      var showType = function () {
        var f = free.filter(function (x) { return x.field === pick.value; })[0];
        hint.textContent = f ? "type: " + M.inferType(f.field, f.value).type + ", default: " + String(f.value) : "";
      };
      pick.addEventListener("change", showType);
      showType();
      wrap2.appendChild(hint);
      box.appendChild(wrap2);
      var add = el("button", { type: "button", id: "mark-add" }, "Mark as parameter");
      var doMark = function () {
        try {
          state.marks = M.mark(state.doc, state.marks, t.name, pick.value, name.value.trim());
        } catch (e) {
          say(e.message, true);
          name.setAttribute("aria-invalid", "true");
          return;
        }
        changed(pick.value + " of " + t.name + " is the parameter " + name.value.trim());
        var again = document.getElementById("mark-field");
        (again || document.getElementById("mark-list") || inspector).focus();
      };
      add.addEventListener("click", doMark);
      name.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") {
          ev.preventDefault();
          doMark();
        }
      });
      box.appendChild(add);
    }
    inspector.appendChild(box);
  }

  function drawStatusCheck(t) {
    var bind = function (label, path, el2, number, help) {
      var i = field(inspector, label, path, el2, help);
      i.addEventListener("change", function () {
        var v = i.type === "checkbox" ? (i.checked ? true : "") : i.value.trim();
        if (number && v !== "") v = Number(v);
        M.set(t, path, v);
        changed(path + " of " + t.name);
      });
    };
    bind("URL", "statusCheck.http.url", input(M.get(t, "statusCheck.http.url"), "url"));
    bind("Method", "statusCheck.http.method", choice(M.get(t, "statusCheck.http.method") || "GET", ["GET", "POST"]));
    bind("Expected status code", "statusCheck.http.criteria.statusCode", input(M.get(t, "statusCheck.http.criteria.statusCode")), false, "e.g. 200 or 200-299");
    bind("Mode", "statusCheck.mode", choice(M.get(t, "statusCheck.mode") || "", ["", "Synchronous", "Continuous"]));
    bind("Failure threshold", "statusCheck.failureThreshold", input(M.get(t, "statusCheck.failureThreshold"), "number"), true);
    bind("Interval (s)", "statusCheck.intervalSeconds", input(M.get(t, "statusCheck.intervalSeconds"), "number"), true);
    bind("Timeout (s)", "statusCheck.timeoutSeconds", input(M.get(t, "statusCheck.timeoutSeconds"), "number"), true);
    var abort = input("", "checkbox");
    abort.checked = t.abortWithStatusCheck === true;
    bind("Abort the workflow when it fails", "abortWithStatusCheck", abort);
  }

  // The typed parameters of the catalog template a fault node came from; a change renders the
  // template again (the API validates) and replaces the node's spec.
  function drawParameters(t, chaos) {
    var origin = state.catalog[t.name];
    var box = el("fieldset", { "class": "params" });
    box.appendChild(el("legend", {}, "Parameters of " + origin.template));
    inspector.appendChild(box);
    var detail = state.details[origin.template];
    if (!detail) {
      box.appendChild(el("p", { "class": "hint" }, "loading…"));
      call("GET", "/console/builder/templates/" + encodeURIComponent(origin.template)).then(function (r) {
        if (r.ok) {
          state.details[origin.template] = r.body;
          drawInspector();
        }
      });
      return;
    }
    var params = (detail.template && detail.template.spec && detail.template.spec.parameters) || [];
    params.forEach(function (p) {
      var v = origin.parameters[p.name];
      var i;
      if (p.type === "enum") i = choice(v, p.enum || []);
      else if (p.type === "boolean") {
        i = input("", "checkbox");
        i.checked = v === true;
      } else i = input(v, ["integer", "number", "percent"].indexOf(p.type) >= 0 ? "number" : "text");
      field(box, p.name + " (" + p.type + ")", "parameters." + p.name, i, p.description);
      i.addEventListener("change", function () {
        var value = i.type === "checkbox" ? i.checked : i.value.trim();
        if (i.type === "number" && value !== "") value = Number(value);
        var next = M.clone(origin.parameters);
        next[p.name] = value;
        call("POST", "/console/builder/templates/" + encodeURIComponent(origin.template) + "/render", JSON.stringify({ parameters: next }))
          .then(function (r) {
            if (!r.ok) {
              state.errors[t.name] = (r.body.details || [{ path: "", message: r.body.message }]).map(function (d) {
                return { field: d.path.indexOf("parameters") === 0 ? d.path : "parameters." + p.name, message: d.message };
              });
              drawAll(true);
              return;
            }
            origin.parameters = r.body.parameters || next;
            t[chaos] = r.body.manifest.spec;
            delete state.errors[t.name];
            changed(p.name + " of " + t.name);
          });
      });
    });
  }

  // The fault's spec as YAML text, parsed by the hub when changed.
  function drawSpec(t, chaos) {
    var area = el("textarea", { rows: "10", spellcheck: "false" });
    area.value = M.toYaml(t[chaos] || {});
    field(inspector, "Spec (" + chaos + ", YAML)", chaos, area);
    area.addEventListener("change", function () {
      parseYaml(area.value).then(function (docs) {
        if (docs.length !== 1 || typeof docs[0] !== "object" || Array.isArray(docs[0])) throw new Error("the spec must be one mapping");
        t[chaos] = docs[0];
        delete state.catalog[t.name];
        changed("spec of " + t.name);
      }).catch(function (e) {
        say(e.message, true);
        area.setAttribute("aria-invalid", "true");
      });
    });
  }

  function drawWorkflowFields() {
    wfFields.textContent = "";
    var doc = state.doc;
    var bind = function (label, path, i) {
      field(wfFields, label, path, i);
      i.setAttribute("data-field", "wf." + path);
      i.addEventListener("change", function () {
        M.set(doc, path, i.value.trim());
        changed(path);
      });
    };
    bind("Name", "metadata.name", input(M.get(doc, "metadata.name")));
    bind("Namespace", "metadata.namespace", input(M.get(doc, "metadata.namespace")));
    var envs = [""].concat(data.environments.map(function (e) { return e.name; }));
    var current = M.get(doc, "spec.environment") || "";
    if (envs.indexOf(current) < 0) envs.push(current);
    bind("Environment", "spec.environment", choice(current, envs));
  }

  // ---- the two views -------------------------------------------------------------------------
  var yamlTimer = null;
  var yamlSeq = 0;

  function parseYaml(text) {
    return call("POST", "/console/builder/parse", text, "application/yaml").then(function (r) {
      if (!r.ok) {
        var d = (r.body.details || [])[0];
        throw new Error((r.body.message || "the YAML does not parse") + (d ? ": " + (d.path ? d.path + ": " : "") + d.message : ""));
      }
      return r.body.documents;
    });
  }

  function writeYaml() {
    yaml.value = M.toYaml(M.toManifest(state.doc));
    yaml.removeAttribute("aria-invalid");
    yamlState.textContent = "In sync with the canvas.";
  }

  yaml.addEventListener("input", function () {
    clearTimeout(yamlTimer);
    yamlState.textContent = "Editing…";
    yamlTimer = setTimeout(readYaml, 350);
  });

  // The YAML as edited becomes the document (the canvas follows); a text that does not parse
  // or is not one Workflow leaves the canvas as it was and says why.
  function readYaml() {
    var seq = ++yamlSeq;
    parseYaml(yaml.value).then(function (docs) {
      if (seq !== yamlSeq) return;
      if (docs.length !== 1) throw new Error("the text holds " + docs.length + " documents; the builder edits one Workflow");
      state.doc = M.fromManifest(docs[0]);
      state.marks = M.liveMarks(state.doc, state.marks);
      Object.keys(state.catalog).forEach(function (n) { if (!M.find(state.doc, n)) delete state.catalog[n]; });
      if (state.selected && !(state.selected.path ? M.at(state.doc, state.selected.path) : M.find(state.doc, state.selected.name))) state.selected = null;
      if (state.selected && state.selected.path) state.selected.name = M.at(state.doc, state.selected.path).name;
      yaml.removeAttribute("aria-invalid");
      yamlState.textContent = "The canvas follows the YAML.";
      drawAll(false);
    }).catch(function (e) {
      if (seq !== yamlSeq) return;
      yaml.setAttribute("aria-invalid", "true");
      yamlState.textContent = e.message;
    });
  }

  function drawAll(withYaml) {
    drawCanvas();
    drawInspector();
    drawWorkflowFields();
    drawTemplateParams();
    if (withYaml) writeYaml();
  }

  // Every edit of the canvas or the side panel: old API verdicts no longer apply.
  function changed(what) {
    state.marks = M.liveMarks(state.doc, state.marks);
    state.errors = {};
    state.notes = {};
    result.textContent = "";
    say(what);
    drawAll(true);
  }

  // ---- dry run, start, live state ------------------------------------------------------------
  function pathsIn(text) {
    return (String(text).match(/spec\.templates\[\d+\][A-Za-z0-9_.\[\]-]*/g) || []);
  }

  function showRefusal(body) {
    state.errors = {};
    var box = el("div", { "class": "notice error", role: "alert", id: "wf-errors" });
    box.appendChild(el("p", {}, body.message || "refused"));
    var list = el("ul", { "class": "field-errors" });
    var details = body.details && body.details.length ? body.details : pathsIn(body.message).map(function (p) { return { path: p, message: body.message }; });
    // Paths count templates in the submitted order (toManifest's), not the document's.
    var sent = M.toManifest(state.doc);
    details.forEach(function (d) {
      list.appendChild(el("li", { "data-path": d.path }, (d.path ? d.path + ": " : "") + d.message));
      var at = M.locate(sent, d.path);
      if (at) (state.errors[at.name] = state.errors[at.name] || []).push({ field: at.field, message: d.message });
    });
    box.appendChild(list);
    result.textContent = "";
    result.appendChild(box);
    var first = Object.keys(state.errors)[0];
    if (first && (!state.selected || !state.errors[state.selected.name])) {
      var node = canvas.querySelector(".node[data-name='" + first + "']");
      if (node) select(keyPath(node.getAttribute("data-path") === null ? "-" : node.getAttribute("data-path")), first);
    }
    drawAll(false);
  }

  function submit(dry) {
    var text = M.toYaml(M.toManifest(state.doc));
    return call("POST", "/console/builder/submit" + (dry ? "?dryRun=true" : ""), text, "application/yaml");
  }

  document.getElementById("wf-dry").addEventListener("click", function () {
    say("dry run…");
    submit(true).then(function (r) {
      if (!r.ok) {
        say("the hub refused the workflow", true);
        showRefusal(r.body);
        return;
      }
      state.errors = {};
      state.notes = {};
      var box = el("div", { "class": "notice ok", id: "wf-plan" });
      box.appendChild(el("p", {}, "Valid: the hub would accept this workflow."));
      var list = el("ul", {});
      (r.body.warnings || []).forEach(function (w) {
        list.appendChild(el("li", {}, w));
        var p = pathsIn(w)[0];
        var at = p && M.locate(M.toManifest(state.doc), p);
        if (at) (state.notes[at.name] = state.notes[at.name] || []).push(w.slice(w.indexOf(": ") + 2));
      });
      box.appendChild(list);
      result.textContent = "";
      result.appendChild(box);
      say("dry run done");
      drawAll(false);
    });
  });

  var start = document.getElementById("wf-start");
  if (start) {
    start.addEventListener("click", function () {
      say("starting…");
      submit(false).then(function (r) {
        if (!r.ok) {
          say("the hub refused the workflow", true);
          showRefusal(r.body);
          return;
        }
        var uid = r.body.metadata.uid;
        say("started " + r.body.metadata.name);
        result.textContent = "";
        var p = el("p", { "class": "notice ok", id: "wf-started" });
        p.appendChild(document.createTextNode("Started: "));
        p.appendChild(el("a", { href: "/experiments/" + encodeURIComponent(uid) }, r.body.metadata.name));
        result.appendChild(p);
        watch(uid);
      });
    });
  }

  var DONE = { Finished: true, Failed: true, Aborted: true };

  // The hub's events that concern a running workflow: its nodes' starts and ends and its own
  // phase changes (hub/src/events.rs).
  var WATCHED = [
    "chaoshub.workflow.node_started", "chaoshub.workflow.node_ended",
    "chaoshub.experiment.running", "chaoshub.experiment.recovering",
    "chaoshub.experiment.finished", "chaoshub.experiment.failed", "chaoshub.experiment.aborted"
  ];

  // Follows the started workflow on the hub's event stream: a node event of this workflow
  // puts its phase on the canvas at once, and each burst of events reads the workflow once
  // (debounced) for the timeline below. Nothing is polled; without EventSource (an old browser)
  // the workflow is read every second instead.
  function watch(uid) {
    stopWatching();
    var run = { uid: uid, source: null, timer: null, busy: false, again: false };
    state.run = run;
    function read() {
      if (run.busy) {
        run.again = true;
        return;
      }
      run.busy = true;
      call("GET", "/console/builder/experiments/" + encodeURIComponent(uid)).then(function (r) {
        run.busy = false;
        if (state.run !== run) return;
        if (r.ok) {
          var wf = r.body.status && r.body.status.workflow;
          var ended = DONE[r.body.status.phase] === true;
          if (ended) stopWatching();
          state.phases = M.phases(wf);
          drawCanvas();
          drawTimeline(r.body.status.phase, wf);
          if (ended) return;
        }
        if (run.again) {
          run.again = false;
          soon();
        } else if (!run.source) {
          run.timer = setTimeout(read, 1000);
        }
      });
    }
    function soon() {
      clearTimeout(run.timer);
      run.timer = setTimeout(read, 150);
    }
    if (window.EventSource) {
      run.source = new EventSource("/console/events?since=" + encodeURIComponent(new Date(Date.now() - 5000).toISOString()));
      run.source.onopen = function () {
        soon();
      };
      run.source.onerror = function () {
        var live = document.getElementById("wf-live");
        if (live) live.textContent = "The event stream is reconnecting…";
      };
      WATCHED.forEach(function (name) {
        run.source.addEventListener(name, function (ev) {
          var e;
          try {
            e = JSON.parse(ev.data);
          } catch (x) {
            return;
          }
          if (!e || e.experimentUid !== uid || state.run !== run) return;
          var a = e.attributes || {};
          if (a["chaoshub.workflow.template"] && a["chaoshub.workflow.node.phase"]) {
            state.phases[a["chaoshub.workflow.template"]] = a["chaoshub.workflow.node.phase"];
            drawCanvas();
          }
          soon();
        });
      });
    }
    read();
  }

  function stopWatching() {
    var run = state.run;
    if (!run) return;
    clearTimeout(run.timer);
    if (run.source) run.source.close();
    run.source = null;
  }
  window.addEventListener("pagehide", stopWatching);

  function drawTimeline(phase, wf) {
    run.textContent = "";
    run.appendChild(el("h3", {}, "Run: " + phase));
    run.lastChild.setAttribute("id", "wf-run-phase");
    if (state.run && state.run.source) run.appendChild(el("p", { id: "wf-live", "class": "hint" }, "Live from the hub's event stream."));
    var table = el("table", { "class": "grid" });
    var head = el("tr");
    ["Node", "Type", "Phase", "Started", "Ended", "Reason"].forEach(function (h) { head.appendChild(el("th", { scope: "col" }, h)); });
    table.appendChild(head);
    ((wf && wf.nodes) || []).forEach(function (n) {
      var tr = el("tr", { "data-node": n.template });
      tr.appendChild(el("td", {}, n.template));
      tr.appendChild(el("td", {}, n.templateType));
      var td = el("td");
      td.appendChild(el("span", { "class": "badge phase-" + n.phase.toLowerCase() }, n.phase));
      tr.appendChild(td);
      tr.appendChild(el("td", {}, (n.startedAt || "").replace(/^.*T|Z$/g, "")));
      tr.appendChild(el("td", {}, (n.endedAt || "").replace(/^.*T|Z$/g, "")));
      tr.appendChild(el("td", {}, n.reason || ""));
      table.appendChild(tr);
    });
    run.appendChild(table);
  }

  // ---- save as template ----------------------------------------------------------------------
  var tplForm = document.getElementById("tpl-form");
  var tplParams = null;
  var tplResult = null;

  function drawTemplateForm() {
    if (!tplForm) return;
    var from = data.template || {};
    var plain = String(from.name || M.get(state.doc, "metadata.name") || "my-workflow").split("/").pop();
    var envName = M.get(state.doc, "spec.environment");
    var env = data.environments.filter(function (e) { return e.name === envName; })[0];
    var adapters = from.adapters && from.adapters.length ? from.adapters : env ? [env.adapter] : [];
    var add = function (label, id, control, help) {
      control.id = id;
      var wrap = el("div", { "class": "field" });
      wrap.appendChild(el("label", { "for": id }, label));
      wrap.appendChild(control);
      if (help) wrap.appendChild(el("small", {}, help));
      tplForm.appendChild(wrap);
      return control;
    };
    add("Template name", "tpl-name", input(plain), "lowercase letters, digits and -; the file is <category>/<name>.yaml");
    add("Title", "tpl-title", input(from.title || ""), "one line for the catalog listing");
    add("Category", "tpl-category", input(from.category || "workflow"), "the catalog folder");
    var desc = el("textarea", { rows: "3" });
    desc.value = from.description || "";
    add("Description", "tpl-description", desc, "the hypothesis, and what to watch while it runs");
    add("Adapters", "tpl-adapters", input(adapters.join(", ")), "adapter types it suits, comma-separated (native, docker, ssm, toxiproxy, envoy, kubernetes, webhook)");
    add("Tags", "tpl-tags", input((from.tags || []).join(", ")), "comma-separated (optional)");
    tplForm.appendChild(el("h3", {}, "Parameters"));
    tplParams = el("ul", { id: "tpl-params" });
    tplForm.appendChild(tplParams);
    if (!data.maySave) {
      tplForm.appendChild(el("p", { "class": "notice warn" }, "Saving a template writes the hub's catalog, which needs the admin role (templates:write)."));
      return;
    }
    var over = input("", "checkbox");
    over.id = "tpl-overwrite";
    over.checked = !!data.template && data.template.source === "local";
    var lab = el("label", { "class": "check" });
    lab.appendChild(over);
    lab.appendChild(document.createTextNode(" Replace a template of the same name"));
    tplForm.appendChild(lab);
    var actions = el("div", { "class": "actions" });
    var save = el("button", { type: "button", id: "tpl-save", "class": "primary" }, "Save as template");
    save.addEventListener("click", saveTemplate);
    actions.appendChild(save);
    tplForm.appendChild(actions);
    tplResult = el("div", { id: "tpl-result", "aria-live": "polite" });
    tplForm.appendChild(tplResult);
  }

  function drawTemplateParams() {
    if (!tplParams) return;
    tplParams.textContent = "";
    if (!state.marks.length) {
      tplParams.appendChild(el("li", { "class": "empty" }, "None yet: select a node and mark one of its fields."));
      return;
    }
    state.marks.forEach(function (m) {
      var t = M.find(state.doc, m.template);
      tplParams.appendChild(el("li", { "data-param": m.name }, m.name + " (" + m.type + ", default " + String(t ? M.get(t, m.field) : "?") + ") ← " + m.template + "." + m.field));
    });
  }

  function listOf(id) {
    return document.getElementById(id).value.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
  }

  // The form's fields an API error path names.
  var TPL_FIELDS = { "metadata.name": "tpl-name", "spec.title": "tpl-title", "spec.category": "tpl-category", "spec.description": "tpl-description", "spec.adapters": "tpl-adapters", "spec.tags": "tpl-tags" };

  function saveTemplate() {
    tplResult.textContent = "";
    tplForm.querySelectorAll("[aria-invalid]").forEach(function (x) { x.removeAttribute("aria-invalid"); });
    var name = document.getElementById("tpl-name").value.trim();
    var body;
    try {
      body = M.toTemplate(state.doc, M.liveMarks(state.doc, state.marks), {
        name: name,
        title: document.getElementById("tpl-title").value.trim(),
        description: document.getElementById("tpl-description").value.trim(),
        category: document.getElementById("tpl-category").value.trim(),
        adapters: listOf("tpl-adapters"),
        tags: listOf("tpl-tags")
      });
    } catch (e) {
      tplResult.appendChild(el("p", { "class": "notice error", role: "alert" }, e.message));
      return;
    }
    var overwrite = document.getElementById("tpl-overwrite").checked;
    say("saving template " + name + "…");
    call("POST", "/console/builder/save-template" + (overwrite ? "?overwrite=true" : ""), JSON.stringify(body)).then(function (r) {
      if (r.ok) {
        say("saved template " + name);
        var p = el("p", { "class": "notice ok", id: "tpl-saved" });
        p.appendChild(document.createTextNode((r.status === 201 ? "Saved" : "Replaced") + " in the catalog: "));
        p.appendChild(el("a", { href: "/catalog/" + encodeURIComponent(r.body.name) }, r.body.name));
        tplResult.appendChild(p);
        return;
      }
      say("the hub refused the template", true);
      var box = el("div", { "class": "notice error", role: "alert", id: "tpl-errors" });
      box.appendChild(el("p", {}, r.body.message || "refused"));
      var list = el("ul", { "class": "field-errors" });
      var sent = M.toManifest(state.doc);
      state.errors = {};
      (r.body.details || []).forEach(function (d) {
        list.appendChild(el("li", { "data-path": d.path }, (d.path ? d.path + ": " : "") + d.message));
        var key = Object.keys(TPL_FIELDS).filter(function (k) { return d.path === k || d.path.indexOf(k + "[") === 0 || d.path.indexOf(k + ".") === 0; })[0];
        if (key) document.getElementById(TPL_FIELDS[key]).setAttribute("aria-invalid", "true");
        var at = M.locate(sent, String(d.path).replace(/^spec\.experiment\./, ""));
        if (at && d.path.indexOf("spec.experiment.") === 0) (state.errors[at.name] = state.errors[at.name] || []).push({ field: at.field, message: d.message });
      });
      box.appendChild(list);
      tplResult.appendChild(box);
      drawCanvas();
      drawInspector();
    });
  }

  // A template opened for editing (`?template=`): a Workflow template is the document with its
  // parameters marked again; a fault template becomes the one node of a new workflow, its typed
  // parameters in the side panel.
  function loadTemplate(info, rendered) {
    if (info.kind === "Workflow") {
      state.doc = M.fromManifest(rendered);
      state.marks = M.marksFromTemplate(info.experiment, info.parameters);
      // A parameter used only inside a longer string ("${size}M") cannot be a mark: saving
      // again would write its default in; say so rather than drop it silently.
      var lost = (info.parameters || []).filter(function (p) {
        return !state.marks.some(function (m) { return m.name === p.name; });
      }).map(function (p) { return p.name; });
      if (lost.length) {
        say("not marked again (used inside longer strings; saving writes their defaults in): " + lost.join(", "), true);
      }
      return;
    }
    if (!M.CHAOS[info.kind]) throw new Error("a " + info.kind + " cannot be a workflow node");
    var plain = String(info.name).split("/").pop();
    state.doc = M.empty(plain + "-workflow");
    var t = M.newTemplate(state.doc, info.kind, { name: plain, spec: rendered.spec });
    M.insert(state.doc, t, null, 0);
    var defaults = {};
    (info.parameters || []).forEach(function (p) {
      if (p["default"] !== undefined) defaults[p.name] = p["default"];
    });
    state.catalog[t.name] = { template: info.name, parameters: defaults };
    select([], t.name);
    data.template = null;
  }

  // ---- start ---------------------------------------------------------------------------------
  drawPalette();
  if (data.doc) {
    try {
      if (data.template) loadTemplate(data.template, data.doc);
      else state.doc = M.fromManifest(data.doc);
    } catch (e) {
      say("cannot load that " + (data.template ? "template" : "workflow") + ": " + e.message, true);
    }
  }
  drawTemplateForm();
  drawAll(true);
  // For tests and the curious: the document as the builder would submit it.
  window.chaoshubBuilder = {
    manifest: function () { return M.toManifest(state.doc); },
    load: function (obj) {
      state.doc = M.fromManifest(obj);
      state.selected = null;
      state.catalog = {};
      state.marks = [];
      changed("loaded");
    },
    marks: function () { return M.clone(state.marks); },
    template: function (meta) { return M.toTemplate(state.doc, state.marks, meta); }
  };
})();
