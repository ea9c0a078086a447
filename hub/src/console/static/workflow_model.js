// chaoshub workflow builder: the document model. No DOM here (workflow_builder.js draws it).
//
// The document IS a Chaos Mesh Workflow (apiVersion chaos-mesh.org/v1alpha1): a flat list of
// named templates, `spec.entry` naming the first, Serial/Parallel templates naming their
// children. The canvas shows it as a tree walked from the entry; a place in the tree is a path
// of child indexes from the entry ([] is the entry, [2, 0] the first child of its third
// child). Every edit goes through the functions below, so what is serialized is exactly the
// document that is drawn.
"use strict";
var WorkflowModel = (function () {
  // templateType of each chaos kind, and the field holding its spec in a template.
  var CHAOS = {
    AWSChaos: "awsChaos", AzureChaos: "azureChaos", BlockChaos: "blockChaos", DNSChaos: "dnsChaos",
    GCPChaos: "gcpChaos", HTTPChaos: "httpChaos", IOChaos: "ioChaos", JVMChaos: "jvmChaos",
    KernelChaos: "kernelChaos", NetworkChaos: "networkChaos",
    PhysicalMachineChaos: "physicalmachineChaos", PodChaos: "podChaos",
    StressChaos: "stressChaos", TimeChaos: "timeChaos"
  };
  var CONTAINERS = { Serial: true, Parallel: true };

  function clone(v) {
    return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
  }

  // An empty workflow.
  function empty(name) {
    return {
      apiVersion: "chaos-mesh.org/v1alpha1",
      kind: "Workflow",
      metadata: { name: name || "my-workflow" },
      spec: { entry: "", templates: [] }
    };
  }

  // A document from a parsed manifest; throws an Error saying what is wrong.
  function fromManifest(obj) {
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) {
      throw new Error("the document is not a mapping");
    }
    if (obj.kind !== "Workflow") {
      throw new Error("kind is " + JSON.stringify(obj.kind) + ", not Workflow");
    }
    var doc = clone(obj);
    doc.spec = doc.spec || {};
    if (!Array.isArray(doc.spec.templates)) {
      throw new Error("spec.templates is not a list");
    }
    doc.spec.templates.forEach(function (t, i) {
      if (!t || typeof t !== "object" || typeof t.name !== "string") {
        throw new Error("spec.templates[" + i + "] has no name");
      }
    });
    if (typeof doc.spec.entry !== "string") doc.spec.entry = "";
    return doc;
  }

  // The manifest to submit: the document with its templates in tree order (entry first,
  // parents before children, as people write them), templates the tree never reaches last.
  function toManifest(doc) {
    var out = clone(doc);
    var order = [];
    var seen = {};
    function visit(name) {
      var t = find(doc, name);
      if (!t || seen[name]) return;
      seen[name] = true;
      order.push(t);
      (t.children || []).forEach(visit);
      (t.conditionalBranches || []).forEach(function (b) { visit(b.target); });
    }
    visit(doc.spec.entry);
    doc.spec.templates.forEach(function (t) {
      if (!seen[t.name]) {
        seen[t.name] = true;
        order.push(t);
      }
    });
    out.spec.templates = order.map(ordered);
    return out;
  }

  // A template's fields in the order people write them: name, templateType, deadline,
  // children, then the rest as they are.
  var FIRST = ["name", "templateType", "deadline", "children"];
  function ordered(t) {
    var out = {};
    FIRST.concat(Object.keys(t)).forEach(function (k) {
      if (k in t && !(k in out)) out[k] = clone(t[k]);
    });
    return out;
  }

  function find(doc, name) {
    var ts = doc.spec.templates;
    for (var i = 0; i < ts.length; i++) {
      if (ts[i].name === name) return ts[i];
    }
    return null;
  }

  function isContainer(t) {
    return !!t && CONTAINERS[t.templateType] === true;
  }

  // The tree drawn on the canvas: {template, path, children, branch}; a template reached twice
  // is drawn twice (both are the same template), a cycle is cut.
  function tree(doc) {
    function node(name, path, stack, branch) {
      var t = find(doc, name);
      var n = { name: name, template: t, path: path, children: [], branch: branch || null, missing: !t };
      if (!t || stack.indexOf(name) >= 0) return n;
      var inner = stack.concat([name]);
      (t.children || []).forEach(function (c, i) {
        n.children.push(node(c, path.concat([i]), inner));
      });
      (t.conditionalBranches || []).forEach(function (b) {
        n.children.push(node(b.target, null, inner, b.expression || "always"));
      });
      return n;
    }
    return doc.spec.entry ? node(doc.spec.entry, [], []) : null;
  }

  // Templates the tree never reaches (drawn apart, so nothing in the document is hidden).
  function unreached(doc) {
    var seen = {};
    (function walk(n) {
      if (!n || seen[n.name]) return;
      seen[n.name] = true;
      n.children.forEach(walk);
    })(tree(doc));
    return doc.spec.templates.filter(function (t) { return !seen[t.name]; });
  }

  // The template at a path, or null.
  function at(doc, path) {
    var t = find(doc, doc.spec.entry);
    for (var i = 0; t && i < path.length; i++) {
      t = find(doc, (t.children || [])[path[i]]);
    }
    return t;
  }

  function samePath(a, b) {
    return !!a && !!b && a.length === b.length && a.every(function (x, i) { return x === b[i]; });
  }

  // A template name not used yet: `base`, else `base-2`, `base-3`…
  function uniqueName(doc, base) {
    base = String(base || "node").toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "") || "node";
    if (!find(doc, base)) return base;
    for (var n = 2; ; n++) {
      if (!find(doc, base + "-" + n)) return base + "-" + n;
    }
  }

  // A new template of a palette kind: Serial, Parallel, Suspend, StatusCheck, or a chaos kind
  // with its spec.
  function newTemplate(doc, type, opts) {
    opts = opts || {};
    var t = { name: uniqueName(doc, opts.name || type), templateType: type };
    if (CONTAINERS[type]) {
      t.children = [];
    } else if (type === "Suspend") {
      t.deadline = opts.deadline || "30s";
    } else if (type === "StatusCheck") {
      t.deadline = "1m";
      t.statusCheck = {
        type: "HTTP", mode: "Synchronous", failureThreshold: 3,
        http: { url: "http://127.0.0.1:8080/healthz", method: "GET", criteria: { statusCode: "200" } }
      };
    } else if (CHAOS[type]) {
      if (opts.deadline) t.deadline = opts.deadline;
      t[CHAOS[type]] = clone(opts.spec) || { mode: "all", selector: {} };
    } else {
      throw new Error("unknown node type " + type);
    }
    return t;
  }

  function references(doc, name) {
    var n = doc.spec.entry === name ? 1 : 0;
    doc.spec.templates.forEach(function (t) {
      (t.children || []).forEach(function (c) { if (c === name) n++; });
      (t.conditionalBranches || []).forEach(function (b) { if (b.target === name) n++; });
    });
    return n;
  }

  // Whether template `name` contains `inner` (or is it).
  function contains(doc, name, inner, stack) {
    if (name === inner) return true;
    stack = stack || [];
    if (stack.indexOf(name) >= 0) return false;
    var t = find(doc, name);
    return !!t && (t.children || []).some(function (c) { return contains(doc, c, inner, stack.concat([name])); });
  }

  // Inserts template `t` (new, or existing when `t` is found by name) as child `index` of the
  // container at `parentPath`; `parentPath` null makes it the entry of an empty workflow.
  // Returns the new node's path.
  function insert(doc, t, parentPath, index) {
    if (parentPath === null) {
      if (doc.spec.entry && find(doc, doc.spec.entry)) {
        throw new Error("a workflow has one entry node; drop the node inside it");
      }
      if (!find(doc, t.name)) doc.spec.templates.push(t);
      doc.spec.entry = t.name;
      return [];
    }
    var parent = at(doc, parentPath);
    if (!isContainer(parent)) {
      throw new Error("only Serial and Parallel nodes hold other nodes");
    }
    if (contains(doc, t.name, parent.name)) {
      throw new Error("a node cannot go inside itself");
    }
    if (!find(doc, t.name)) doc.spec.templates.push(t);
    parent.children = parent.children || [];
    index = Math.max(0, Math.min(index === undefined ? parent.children.length : index, parent.children.length));
    parent.children.splice(index, 0, t.name);
    return parentPath.concat([index]);
  }

  // Removes the node at `path` from its parent (the entry: the whole tree); templates no
  // longer referenced anywhere are deleted with their own unreferenced children.
  function remove(doc, path) {
    var name;
    if (path.length === 0) {
      name = doc.spec.entry;
      doc.spec.entry = "";
    } else {
      var parent = at(doc, path.slice(0, -1));
      name = parent.children.splice(path[path.length - 1], 1)[0];
    }
    prune(doc, name);
  }

  function prune(doc, name) {
    var t = find(doc, name);
    if (!t || references(doc, name) > 0) return;
    doc.spec.templates.splice(doc.spec.templates.indexOf(t), 1);
    (t.children || []).forEach(function (c) { prune(doc, c); });
    (t.conditionalBranches || []).forEach(function (b) { prune(doc, b.target); });
  }

  // Moves the node at `from` to child `index` of the container at `toParent` (index counted
  // before the move). Returns the node's new path.
  function move(doc, from, toParent, index) {
    if (from.length === 0) throw new Error("the entry node cannot move; move its children");
    var oldParentPath = from.slice(0, -1);
    var oldIndex = from[from.length - 1];
    var oldParent = at(doc, oldParentPath);
    var name = oldParent.children[oldIndex];
    var target = at(doc, toParent);
    if (!isContainer(target)) throw new Error("only Serial and Parallel nodes hold other nodes");
    if (contains(doc, name, target.name)) throw new Error("a node cannot go inside itself");
    oldParent.children.splice(oldIndex, 1);
    if (samePath(oldParentPath, toParent) && index > oldIndex) index--;
    // The target's path may have shifted when the moved node was an earlier sibling of one of
    // its ancestors.
    var to = toParent.slice();
    if (to.length > oldParentPath.length && samePath(to.slice(0, oldParentPath.length), oldParentPath) &&
        to[oldParentPath.length] > oldIndex) {
      to[oldParentPath.length]--;
    }
    target.children.splice(Math.min(index, target.children.length), 0, name);
    return to.concat([Math.min(index, target.children.length - 1)]);
  }

  // Keyboard moves: up/down among siblings, out (after the parent), in (into the previous
  // sibling when it is a Serial/Parallel). Return the new path, or null when not possible.
  function moveBy(doc, path, how) {
    if (path.length === 0) return null;
    var parentPath = path.slice(0, -1);
    var i = path[path.length - 1];
    var parent = at(doc, parentPath);
    if (how === "up") return i > 0 ? move(doc, path, parentPath, i - 1) : null;
    if (how === "down") return i < parent.children.length - 1 ? move(doc, path, parentPath, i + 2) : null;
    if (how === "out") {
      if (parentPath.length === 0) return null;
      return move(doc, path, parentPath.slice(0, -1), parentPath[parentPath.length - 1] + 1);
    }
    if (how === "in") {
      var prev = i > 0 ? at(doc, parentPath.concat([i - 1])) : null;
      if (!isContainer(prev)) return null;
      return move(doc, path, parentPath.concat([i - 1]), prev.children.length);
    }
    return null;
  }

  // Renames a template and every reference to it.
  function rename(doc, from, to) {
    if (from === to) return;
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(to)) {
      throw new Error("a name is lowercase letters, digits and '-' (starting and ending with a letter or digit)");
    }
    if (find(doc, to)) throw new Error("another node is named " + to);
    var t = find(doc, from);
    t.name = to;
    if (doc.spec.entry === from) doc.spec.entry = to;
    doc.spec.templates.forEach(function (x) {
      if (x.children) x.children = x.children.map(function (c) { return c === from ? to : c; });
      (x.conditionalBranches || []).forEach(function (b) { if (b.target === from) b.target = to; });
    });
  }

  // A field by dotted path ("statusCheck.http.url"); `set` with "" or undefined removes it.
  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function set(obj, path, value) {
    var keys = path.split(".");
    var o = obj;
    for (var i = 0; i < keys.length - 1; i++) {
      if (o[keys[i]] == null || typeof o[keys[i]] !== "object") o[keys[i]] = {};
      o = o[keys[i]];
    }
    var last = keys[keys.length - 1];
    if (value === "" || value === undefined || value === null) delete o[last];
    else o[last] = value;
  }

  // The chaos kind of a template and the field of its spec, or null.
  function chaosField(t) {
    return t && CHAOS[t.templateType] ? CHAOS[t.templateType] : null;
  }

  // Changes a chaos template's kind, moving its spec to the new kind's field.
  function setChaosKind(t, kind) {
    var old = chaosField(t);
    var spec = old ? t[old] : {};
    if (old) delete t[old];
    t.templateType = kind;
    t[CHAOS[kind]] = spec;
  }

  // An API error path (`spec.templates[3].networkChaos.mode`) as {name, field} of the
  // template it names, or null.
  function locate(doc, path) {
    var m = /^\.?spec\.templates\[(\d+)\]\.?(.*)$/.exec(path || "");
    if (!m) return null;
    var t = doc.spec.templates[Number(m[1])];
    return t ? { name: t.name, field: m[2].replace(/\[\d+\]/g, "") } : null;
  }

  // Node phases from a workflow's status (`status.workflow.nodes`), by template name: the
  // hub names nodes after their templates, in tree order.
  function phases(status) {
    var out = {};
    ((status && status.nodes) || []).forEach(function (n) {
      if (!(n.template in out)) out[n.template] = n.phase;
    });
    return out;
  }

  // ---- template parameters -------------------------------------------------------------------
  // A mark makes one scalar field of one template a parameter of the catalog template the
  // workflow is saved as: {name, template, field, type, values (enum), asString}. The field is
  // a dotted path inside the template ("networkChaos.delay.latency"); the parameter's default is
  // the field's value when the template is made, so editing the node edits the default.
  var STRUCTURE = { name: true, templateType: true, children: true, conditionalBranches: true };
  var MODES = ["one", "all", "fixed", "fixed-percent", "random-max-percent"];
  var PERCENT_KEYS = { loss: true, corrupt: true, duplicate: true, correlation: true, percent: true, load: true };
  var DURATION = /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/;

  // The scalar fields of a template a person may make a parameter, in document order. Keys
  // holding a "." (label keys such as app.kubernetes.io/name) cannot be addressed by a dotted
  // path and are left out.
  function leafFields(t) {
    var out = [];
    (function walk(v, path) {
      if (v === null || typeof v !== "object") {
        if (path) out.push({ field: path, value: v });
        return;
      }
      Object.keys(v).forEach(function (k) {
        if (!path && STRUCTURE[k]) return;
        if (String(k).indexOf(".") >= 0) return;
        walk(v[k], path ? path + "." + k : String(k));
      });
    })(t || {}, "");
    return out.filter(function (f) { return f.value !== null; });
  }

  // The parameter type a field's value suggests: {type, values?, asString}. `asString` keeps a
  // number written as a string (Chaos Mesh's `loss: "25"`) a string, through `${p:string}`.
  function inferType(field, value) {
    var last = String(field).split(".").pop();
    if (typeof value === "boolean") return { type: "boolean", asString: false };
    if (typeof value === "number") {
      return { type: PERCENT_KEYS[last] ? "percent" : Number.isInteger(value) ? "integer" : "number", asString: false };
    }
    var s = String(value);
    if (last === "mode" && MODES.indexOf(s) >= 0) return { type: "enum", values: MODES.slice(), asString: false };
    if (PERCENT_KEYS[last] && /^[0-9]+(\.[0-9]+)?%?$/.test(s) && parseFloat(s) <= 100) return { type: "percent", asString: true };
    if (DURATION.test(s)) return { type: "duration", asString: false };
    if (/^-?[0-9]+$/.test(s)) return { type: "integer", asString: true };
    if (/^-?[0-9]+\.[0-9]+$/.test(s)) return { type: "number", asString: true };
    return { type: "string", asString: false };
  }

  var PARAM_NAME = /^[A-Za-z][A-Za-z0-9_]{0,62}$/;

  // A parameter name suggested for a field of a template: node_lastkey, in the allowed alphabet.
  function suggestName(template, field) {
    var base = (template + "_" + String(field).split(".").pop()).replace(/[^A-Za-z0-9_]+/g, "_");
    if (!/^[A-Za-z]/.test(base)) base = "p_" + base;
    return base.slice(0, 63);
  }

  // Adds a mark for `field` of template `template` named `name`; returns the new marks list
  // (the old one is not changed). Throws an Error naming what is wrong.
  function mark(doc, marks, template, field, name) {
    if (!PARAM_NAME.test(name || "")) {
      throw new Error("a parameter name is letters, digits and _, starting with a letter (at most 63)");
    }
    if (marks.some(function (m) { return m.name === name; })) throw new Error("another field is already the parameter " + name);
    if (marks.some(function (m) { return m.template === template && m.field === field; })) {
      throw new Error(field + " of " + template + " is already a parameter");
    }
    var t = find(doc, template);
    if (!t) throw new Error("no node is named " + template);
    var found = leafFields(t).filter(function (f) { return f.field === field; })[0];
    if (!found) throw new Error(template + " has no field " + field + " to make a parameter");
    var inferred = inferType(field, found.value);
    var m = { name: name, template: template, field: field, type: inferred.type, asString: inferred.asString };
    if (inferred.values) m.values = inferred.values;
    return marks.concat([m]);
  }

  function unmark(marks, name) {
    return marks.filter(function (m) { return m.name !== name; });
  }

  // Marks after a template was renamed.
  function renameMarks(marks, from, to) {
    return marks.map(function (m) {
      return m.template === from ? Object.assign({}, m, { template: to }) : m;
    });
  }

  // The marks whose template and field still exist (and are still scalars).
  function liveMarks(doc, marks) {
    return marks.filter(function (m) {
      var t = find(doc, m.template);
      var v = t ? get(t, m.field) : undefined;
      return v !== undefined && v !== null && typeof v !== "object";
    });
  }

  // A parameter's default from the field's value, in the parameter's own type.
  function defaultOf(m, value) {
    if (m.type === "integer" || m.type === "number" || m.type === "percent") {
      return typeof value === "number" ? value : Number(String(value).replace(/%$/, ""));
    }
    if (m.type === "boolean") return value === true || value === "true";
    return String(value);
  }

  // Text that must stay literal in a template: `${` is written `$${` (docs/catalog.md).
  function escapePlaceholders(v) {
    if (typeof v === "string") return v.split("${").join("$${");
    if (Array.isArray(v)) return v.map(escapePlaceholders);
    if (v && typeof v === "object") {
      var out = {};
      Object.keys(v).forEach(function (k) { out[k] = escapePlaceholders(v[k]); });
      return out;
    }
    return v;
  }

  // The catalog Template (chaoshub.dev/v1alpha1) of the workflow: its experiment is the
  // document with each marked field replaced by its placeholder, its parameters typed from the
  // marks with the current values as defaults. `meta`: {name, title, description, category,
  // tags, adapters, descriptions: {param: text}}. The experiment is named by generateName, so
  // every run of the template is a new workflow.
  function toTemplate(doc, marks, meta) {
    meta = meta || {};
    var experiment = escapePlaceholders(toManifest(doc));
    var md = experiment.metadata || {};
    if (md.name) {
      md.generateName = md.name + "-";
      delete md.name;
    }
    experiment.metadata = md;
    // A parameter a loaded template uses in two places is two marks of one name: both fields
    // get the placeholder, the first gives the default.
    var declared = {};
    var parameters = [];
    marks.forEach(function (m) {
      var t = find(experiment, m.template);
      var value = t ? get(find(doc, m.template), m.field) : undefined;
      if (value === undefined || value === null || typeof value === "object") {
        throw new Error("parameter " + m.name + ": " + m.template + " has no value at " + m.field);
      }
      set(t, m.field, "${" + m.name + (m.asString ? ":string" : "") + "}");
      if (declared[m.name]) return;
      declared[m.name] = true;
      var p = {
        name: m.name,
        type: m.type,
        description: (meta.descriptions && meta.descriptions[m.name]) || (m.field + " of node " + m.template),
        default: defaultOf(m, value)
      };
      if (m.values) p["enum"] = m.values.slice();
      parameters.push(p);
    });
    var spec = {
      title: meta.title || "",
      description: meta.description || "",
      category: meta.category || "",
      tags: (meta.tags || []).slice(),
      adapters: (meta.adapters || []).slice()
    };
    if (!spec.tags.length) delete spec.tags;
    if (parameters.length) spec.parameters = parameters;
    spec.experiment = experiment;
    return {
      apiVersion: "chaoshub.dev/v1alpha1",
      kind: "Template",
      metadata: { name: meta.name || "" },
      spec: spec
    };
  }

  // The marks of a saved template: every string that is exactly one placeholder, found in its
  // experiment's templates, typed by the template's parameter declarations.
  function marksFromTemplate(experiment, parameters) {
    var declared = {};
    (parameters || []).forEach(function (p) { declared[p.name] = p; });
    var out = [];
    (((experiment || {}).spec || {}).templates || []).forEach(function (t) {
      if (!t || typeof t.name !== "string") return;
      leafFields(t).forEach(function (f) {
        var m = typeof f.value === "string" && /^\$\{\s*([A-Za-z][A-Za-z0-9_]*)\s*(:\s*string\s*)?\}$/.exec(f.value);
        if (!m || !declared[m[1]]) return;
        var p = declared[m[1]];
        var mk = { name: m[1], template: t.name, field: f.field, type: p.type, asString: !!m[2] };
        if (p["enum"]) mk.values = p["enum"].slice();
        out.push(mk);
      });
    });
    return out;
  }

  // ---- YAML ----------------------------------------------------------------------------------
  // Writes what JSON can hold, in the block style people write by hand; lists of plain
  // scalars in flow style (`children: [a, b]`). Strings YAML would read as something else are
  // double-quoted (JSON string syntax is valid YAML).
  function scalar(v) {
    if (v === null) return "null";
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    var s = String(v);
    var plain = /^[A-Za-z0-9_\/.][A-Za-z0-9_\/.:@%+=()-]*( [A-Za-z0-9_\/.:@%+=()-]+)*$/.test(s) &&
      !/:( |$)/.test(s) &&
      !/^(true|false|yes|no|on|off|y|n|null|~)$/i.test(s) &&
      !/^[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?$/.test(s) &&
      !/^[-+]?\.(inf|nan)$/i.test(s) &&
      !/^0[xob]/i.test(s) && !/^\d+(:\d+)+$/.test(s) && !/^\d{4}-\d\d-\d\d/.test(s);
    return plain ? s : JSON.stringify(s);
  }
  function key(k) {
    return /^[A-Za-z_][A-Za-z0-9_.\/-]*$/.test(k) && scalar(k) === k ? k : JSON.stringify(k);
  }
  function isScalar(v) {
    return v === null || typeof v !== "object";
  }
  function toYaml(v) {
    var out = [];
    function block(v, indent) {
      var pad = new Array(indent + 1).join(" ");
      if (Array.isArray(v)) {
        v.forEach(function (item) {
          if (isScalar(item)) out.push(pad + "- " + scalar(item));
          else if (Array.isArray(item) || Object.keys(item).length === 0) out.push(pad + "- " + inline(item));
          else {
            var lines = [];
            var saved = out;
            out = lines;
            block(item, indent + 2);
            out = saved;
            lines[0] = pad + "- " + lines[0].slice(indent + 2);
            lines.forEach(function (l) { out.push(l); });
          }
        });
        return;
      }
      Object.keys(v).forEach(function (k) {
        var x = v[k];
        if (isScalar(x) || (Array.isArray(x) && x.every(isScalar)) || (typeof x === "object" && Object.keys(x).length === 0)) {
          out.push(pad + key(k) + ": " + (isScalar(x) ? scalar(x) : inline(x)));
        } else {
          out.push(pad + key(k) + ":");
          block(x, Array.isArray(x) ? indent + 2 : indent + 2);
        }
      });
    }
    // Flow style ends plain scalars at `,` `]` `}`; quote anything that could be misread.
    function inline(v) {
      if (isScalar(v)) {
        var s = scalar(v);
        return typeof v === "string" && s === v && /[:,\[\]{}#]/.test(v) ? JSON.stringify(v) : s;
      }
      if (Array.isArray(v)) return "[" + v.map(inline).join(", ") + "]";
      return "{" + Object.keys(v).map(function (k) { return key(k) + ": " + inline(v[k]); }).join(", ") + "}";
    }
    if (isScalar(v)) return scalar(v) + "\n";
    block(v, 0);
    return out.join("\n") + "\n";
  }

  // Whether two JSON values are equal, objects compared without key order.
  function equal(a, b) {
    if (a === b) return true;
    if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    var ka = Object.keys(a), kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    return ka.every(function (k) { return Object.prototype.hasOwnProperty.call(b, k) && equal(a[k], b[k]); });
  }

  return {
    CHAOS: CHAOS, empty: empty, fromManifest: fromManifest, toManifest: toManifest, find: find,
    isContainer: isContainer, tree: tree, unreached: unreached, at: at, samePath: samePath,
    uniqueName: uniqueName, newTemplate: newTemplate, insert: insert, remove: remove, move: move,
    moveBy: moveBy, rename: rename, get: get, set: set, chaosField: chaosField,
    setChaosKind: setChaosKind, locate: locate, phases: phases, toYaml: toYaml, equal: equal,
    clone: clone, leafFields: leafFields, inferType: inferType, suggestName: suggestName,
    mark: mark, unmark: unmark, renameMarks: renameMarks, liveMarks: liveMarks,
    toTemplate: toTemplate, marksFromTemplate: marksFromTemplate
  };
})();
