// The lineage graph (portal/lineage.py): draws [data-lineage-graph] with the vendored
// cytoscape. The graph document comes from the element's data-graph attribute, or from
// data-src when the attribute is absent. Inputs stand left, outputs right (a column per
// step away from the product in focus); pan and zoom are cytoscape's own; selecting a
// product opens its page. The drawn graph is exposed as window.meshLineage (tests use it).
(function () {
  "use strict";

  var COLUMN = 380;
  var ROW = 96;
  var COLOURS = {
    ink: "#1b1f24", line: "#57606a", accent: "#0b5cad", panel: "#ffffff",
    focus: "#dbeafe", pii: "#8e1b6a", piiFill: "#fbe7f3"
  };

  // cytoscape adds a <style> element for its container unless one with this id exists; the
  // CSP refuses inline styles, so the rule lives in portal.css and this placeholder stops it.
  function quietStylesheet() {
    var id = "__________cytoscape_stylesheet";
    if (!document.getElementById(id)) {
      var placeholder = document.createElement("meta");
      placeholder.id = id;
      document.head.appendChild(placeholder);
    }
  }

  function positions(nodes) {
    var columns = {};
    nodes.forEach(function (node) {
      (columns[node.level] = columns[node.level] || []).push(node.id);
    });
    var placed = {};
    Object.keys(columns).forEach(function (level) {
      var ids = columns[level];
      ids.forEach(function (id, index) {
        placed[id] = { x: Number(level) * COLUMN, y: (index - (ids.length - 1) / 2) * ROW };
      });
    });
    return placed;
  }

  function elements(graph) {
    var placed = positions(graph.nodes);
    var items = graph.nodes.map(function (node) {
      var marker = node.pii ? "\u26a0 PII \u00b7 " : "";
      return {
        group: "nodes",
        data: {
          id: node.id,
          label: node.id + "\n" + marker + node.classification + " \u00b7 " + node.health,
          url: node.url,
          role: node.role
        },
        position: placed[node.id],
        classes: [node.role, node.pii ? "pii" : "", "health-" + node.health_css].join(" ")
      };
    });
    graph.edges.forEach(function (edge) {
      var label = edge.label;
      if (edge.pii) { label = "\u26a0 PII: " + label; }
      else if (edge.pii_undeclared) { label = "\u26a0 may carry PII"; }
      items.push({
        group: "edges",
        data: { id: edge.id, source: edge.source, target: edge.target, label: label },
        classes: edge.pii ? "pii" : (edge.pii_undeclared ? "pii-maybe" : "")
      });
    });
    return items;
  }

  var STYLE = [
    { selector: "node", style: {
      "shape": "round-rectangle", "width": 210, "height": 52,
      "background-color": COLOURS.panel, "border-width": 1, "border-color": COLOURS.line,
      "label": "data(label)", "text-wrap": "wrap", "text-max-width": 200,
      "text-valign": "center", "text-halign": "center", "font-size": 11,
      "color": COLOURS.ink
    } },
    { selector: "node.focus", style: {
      "background-color": COLOURS.focus, "border-width": 3, "border-color": COLOURS.accent,
      "font-weight": "bold"
    } },
    { selector: "node.pii", style: {
      "shape": "cut-rectangle", "background-color": COLOURS.piiFill,
      "border-color": COLOURS.pii, "border-width": 3, "border-style": "double",
      "color": COLOURS.pii
    } },
    { selector: "node.focus.pii", style: { "border-width": 4 } },
    { selector: "edge", style: {
      "width": 1.5, "line-color": COLOURS.line, "target-arrow-color": COLOURS.line,
      "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 1.2,
      "label": "data(label)", "font-size": 9, "color": COLOURS.ink,
      "text-rotation": "autorotate", "text-background-color": "#ffffff",
      "text-background-opacity": 0.9, "text-background-padding": 2
    } },
    { selector: "edge.pii", style: {
      "width": 4, "line-color": COLOURS.pii, "target-arrow-color": COLOURS.pii,
      "color": COLOURS.pii, "font-weight": "bold"
    } },
    { selector: "edge.pii-maybe", style: {
      "width": 3, "line-style": "dashed", "line-color": COLOURS.pii,
      "target-arrow-color": COLOURS.pii, "color": COLOURS.pii
    } }
  ];

  function draw(container, graph) {
    if (!window.cytoscape || !graph || !graph.nodes) { return; }
    quietStylesheet();
    var cy = window.cytoscape({
      container: container,
      elements: elements(graph),
      style: STYLE,
      layout: { name: "preset", fit: true, padding: 24 },
      minZoom: 0.2,
      maxZoom: 3,
      boxSelectionEnabled: false,
      autoungrabify: true
    });
    cy.on("tap", "node", function (event) {
      var url = event.target.data("url");
      if (url && event.target.data("role") !== "focus") { window.location.assign(url); }
    });
    cy.on("mouseover", "node", function () { container.classList.add("pointing"); });
    cy.on("mouseout", "node", function () { container.classList.remove("pointing"); });
    window.meshLineage = cy;
    container.setAttribute("data-drawn", "true");
  }

  function start() {
    var container = document.querySelector("[data-lineage-graph]");
    if (!container) { return; }
    var inline = container.getAttribute("data-graph");
    if (inline) {
      try { draw(container, JSON.parse(inline)); return; } catch (ignored) { /* fetch below */ }
    }
    var source = container.getAttribute("data-src");
    if (!source) { return; }
    fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (graph) { draw(container, graph); })
      .catch(function () { /* the text lists beside the graph still show the lineage */ });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
