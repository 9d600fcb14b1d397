// The flow graph: a playbook's steps as boxes in layers, its transitions as arrows with their conditions.
// #/graph?path=P&version=V draws a catalog playbook; #/executions/<id>/graph colours the steps an execution
// ran by their status, and follows a running execution every 2 s.
import { api, every, h, link, query, s, status } from "/ui/lib.js";

const W = 184, H = 50, GAP_X = 44, GAP_Y = 78, PAD = 24, LABEL = 30; // LABEL: characters of a condition shown
const DONE = new Set(["COMPLETED", "FAILED"]);
const LEGEND = ["COMPLETED", "FAILED", "RUNNING", "RETRYING", "SKIPPED"];

export async function render(main, route) {
  const execution = route.parts[0] === "executions" ? route.parts[1] : null;
  const url = execution
    ? `/api/executions/${encodeURIComponent(execution)}/graph`
    : `/api/graph${query({ path: route.params.get("path"), version: route.params.get("version") })}`;
  let graph = await api(url);
  const holder = h("div", { class: "graph", id: "graph", style: { overflow: "auto" } });
  main.append(header(graph, execution), legend(graph, execution), holder);
  holder.append(draw(graph, execution));
  if (!execution || DONE.has(graph.status)) return null;
  const note = h("p", { class: "muted", id: "graph-note" });
  holder.before(note);
  const stop = every(2000, async () => {
    let next;
    try {
      next = await api(url);
      note.replaceChildren();
    } catch (error) {
      // A blip (the server restarting, a network hiccup) is said, and the next tick tries again.
      note.replaceChildren(`Could not refresh: ${error.message}; trying again.`);
      return;
    }
    const same = shape(next) === shape(graph);
    graph = next;
    if (same) paint(holder, graph);
    else holder.replaceChildren(draw(graph, execution)); // a derived graph grows as steps start
    main.querySelector("#graph-status")?.replaceChildren(status(graph.status));
    if (DONE.has(graph.status)) stop();
  });
  return stop;
}

function header(graph, execution) {
  if (!execution) {
    const page = link(["catalog", ...graph.path.split("/")], { v: graph.version });
    return h(
      "div",
      {},
      h("h1", {}, "Flow graph"),
      h("div", { class: "facts" }, h("span", {}, "playbook ", h("a", { href: page }, h("b", {}, graph.path))), h("span", {}, "version ", h("b", {}, graph.version)), h("span", {}, `${graph.nodes.length} steps`)),
    );
  }
  const where = { catalog: `catalog version ${graph.version}`, sealed: `file ${graph.file} as the worker read it`, file: `file ${graph.file}`, events: "its events" }[graph.source];
  return h(
    "div",
    {},
    h("h1", {}, "Flow graph of an execution"),
    h(
      "div",
      { class: "facts" },
      h("span", {}, "execution ", h("a", { href: link(["executions", execution]) }, h("b", { class: "mono" }, execution))),
      h("span", { id: "graph-status" }, status(graph.status)),
      graph.path ? h("span", {}, "playbook ", h("b", {}, graph.path)) : null,
      h("span", { id: "graph-source" }, "drawn from ", h("b", {}, where)),
    ),
    graph.derived
      ? h("p", { class: "warn-box", id: "derived" }, "The playbook this execution ran is no longer available, so the graph is derived from its events: it shows only the steps that ran and the transitions taken, without their conditions.")
      : null,
  );
}

function legend(graph, execution) {
  const items = execution ? [...LEGEND.map((x) => status(x)), h("span", { class: "status" }, "NOT RUN")] : [];
  const iterators = graph.nodes.some((n) => n.iterator);
  return h(
    "div",
    { class: "filters legend", id: "legend" },
    items,
    iterators ? h("span", { class: "muted" }, "↻ iterator (dashed box)") : null,
    h("span", { class: "muted" }, "arrows: transitions; their label is the condition"),
  );
}

// Changes that need a new drawing rather than new colours.
const shape = (graph) => JSON.stringify([graph.nodes.map((n) => n.name), graph.edges.map((e) => [e.from, e.to])]);

// ---- layout ----------------------------------------------------------------------------------------------

const key = (from, to) => `${from}\u0000${to}`;

// Sugiyama in small: longest-path layers from the first step over the graph without its back edges (found
// by a depth-first walk from the first step); an edge spanning several layers gets a dummy point on each
// layer between, so that it keeps its own place in the rows; then barycenter passes (down, up, down) order
// each row by the mean position of its neighbours in the row before, to reduce crossings.
export function layout(nodes, edges) {
  const names = nodes.map((n) => n.name);
  const known = new Set(names);
  const drawn = edges.filter((e) => known.has(e.from) && known.has(e.to));
  const back = backEdges(names, drawn);
  const forward = drawn.filter((e) => !back.has(key(e.from, e.to)));
  const layer = longestPath(names, forward);
  const rows = [];
  for (const n of names) (rows[layer.get(n)] ||= []).push(n);
  const chains = new Map(), segments = [];
  for (const e of forward) {
    if (chains.has(key(e.from, e.to))) continue;
    const chain = [];
    for (let l = layer.get(e.from) + 1; l < layer.get(e.to); l++) {
      const dummy = `\u0001${chains.size}:${l}`;
      (rows[l] ||= []).push(dummy);
      chain.push(dummy);
    }
    chains.set(key(e.from, e.to), chain);
    [e.from, ...chain, e.to].reduce((a, b) => (segments.push([a, b]), b));
  }
  const dense = rows.filter(Boolean);
  const preds = new Map(), succs = new Map();
  for (const [a, b] of segments) {
    (preds.get(b) || preds.set(b, []).get(b)).push(a);
    (succs.get(a) || succs.set(a, []).get(a)).push(b);
  }
  const sweep = (order, neighbours) => {
    for (const i of order) {
      const at = new Map(dense.flatMap((row) => row.map((n, j) => [n, j])));
      const centre = (n) => {
        const near = neighbours.get(n) || [];
        return near.length ? near.reduce((sum, m) => sum + at.get(m), 0) / near.length : at.get(n);
      };
      const score = new Map(dense[i].map((n) => [n, centre(n)]));
      dense[i].sort((x, y) => score.get(x) - score.get(y)); // stable: ties keep the workflow's order
    }
  };
  const down = dense.map((_, i) => i).slice(1);
  const up = dense.map((_, i) => i).slice(0, -1).reverse();
  sweep(down, preds);
  sweep(up, succs);
  sweep(down, preds);
  return { rows: dense, back, chains };
}

function backEdges(names, edges) {
  const out = new Map(names.map((n) => [n, []]));
  for (const e of edges) out.get(e.from).push(e.to);
  const back = new Set(), state = new Map(); // 1: on the walk's path, 2: finished
  const visit = (n) => {
    state.set(n, 1);
    for (const m of out.get(n)) {
      if (state.get(m) === 1) back.add(key(n, m));
      else if (!state.has(m)) visit(m);
    }
    state.set(n, 2);
  };
  for (const n of names) if (!state.has(n)) visit(n); // the first step first, then anything unreached
  return back;
}

// Each step one layer below its lowest predecessor (Kahn's order over the acyclic rest).
function longestPath(names, forward) {
  const layer = new Map(names.map((n) => [n, 0]));
  const incoming = new Map(names.map((n) => [n, 0]));
  for (const e of forward) incoming.set(e.to, incoming.get(e.to) + 1);
  const ready = names.filter((n) => incoming.get(n) === 0);
  while (ready.length) {
    const n = ready.shift();
    for (const e of forward) {
      if (e.from !== n) continue;
      layer.set(e.to, Math.max(layer.get(e.to), layer.get(n) + 1));
      incoming.set(e.to, incoming.get(e.to) - 1);
      if (incoming.get(e.to) === 0) ready.push(e.to);
    }
  }
  return layer;
}

// ---- drawing ---------------------------------------------------------------------------------------------

const DUMMY = 14; // the width a long edge takes in a row it passes through
const isDummy = (id) => id.startsWith("\u0001");

function draw(graph, execution) {
  const { rows, back, chains } = layout(graph.nodes, graph.edges);
  const span = (row) => row.reduce((sum, id) => sum + (isDummy(id) ? DUMMY + GAP_X / 2 : W + GAP_X), 0);
  const widest = Math.max(0, ...rows.map(span));
  const at = new Map();
  rows.forEach((row, i) => {
    let x = PAD + (widest - span(row)) / 2;
    for (const id of row) {
      at.set(id, { x, y: PAD + i * (H + GAP_Y), dummy: isDummy(id) });
      x += isDummy(id) ? DUMMY + GAP_X / 2 : W + GAP_X;
    }
  });
  const width = widest + 2 * PAD + (back.size ? 240 : 0); // room for the arcs of back edges and their labels
  const height = rows.length * H + Math.max(0, rows.length - 1) * GAP_Y + 2 * PAD;
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const boxes = [...at.entries()].filter(([, p]) => !p.dummy);
  const known = (e) => byName.has(e.from) && byName.has(e.to);
  let backs = 0;
  return s(
    "svg",
    { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "flow graph" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8793a5" }))),
    s(
      "g",
      { class: "edges" },
      graph.edges.filter(known).map((e) => {
        const route = back.has(key(e.from, e.to)) ? backRoute(at.get(e.from), at.get(e.to), boxes, backs++) : downRoute(e, at, chains);
        return edge(e, route);
      }),
    ),
    s("g", { class: "nodes" }, boxes.map(([name, p]) => node(byName.get(name), p, graph, execution))),
  );
}

// Down the layers, through the edge's dummy points: {d: path, x, y: where its label goes}.
function downRoute(e, at, chains) {
  const a = at.get(e.from), b = at.get(e.to);
  const points = [[a.x + W / 2, a.y + H]];
  for (const id of chains.get(key(e.from, e.to)) || []) {
    const p = at.get(id);
    points.push([p.x + DUMMY / 2, p.y], [p.x + DUMMY / 2, p.y + H]);
  }
  points.push([b.x + W / 2, b.y - 2]);
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x1, y1] = points[i - 1], [x2, y2] = points[i];
    const mid = (y1 + y2) / 2;
    d += i % 2 ? ` C${x1},${mid} ${x2},${mid} ${x2},${y2}` : ` L${x2},${y2}`; // odd: between layers
  }
  const [[x1, y1], [x2, y2]] = points;
  return { d, x: (x1 + x2) / 2, y: (y1 + y2) / 2 + 4 };
}

// Up the graph (a cycle, or a step back to itself): out of the right side, around every box between; its
// label to the right of the curve.
function backRoute(a, b, boxes, index) {
  if (a === b) {
    // Over the top-right corner, clear of the back edges that come in at the middle of the right side.
    const x = a.x + W, y = a.y;
    const d = `M${x - 26},${y} C${x - 26},${y - 30} ${x + 30},${y + 12} ${x + 2},${y + 12}`;
    return { d, x: x + 16, y: y - 6, anchor: "start" };
  }
  const top = Math.min(a.y, b.y), bottom = Math.max(a.y, b.y);
  const right = Math.max(...boxes.filter(([, p]) => p.y >= top && p.y <= bottom).map(([, p]) => p.x + W));
  const bulge = right + 30 + (index % 6) * 14;
  const x1 = a.x + W, x2 = b.x + W, y1 = a.y + H / 2 + 6, y2 = b.y + H / 2 + 4;
  const d = `M${x1},${y1} C${bulge},${y1} ${bulge},${y2} ${x2 + 2},${y2}`;
  // A cubic whose two control points sit at `bulge` reaches 3/4 of the way there at its middle.
  return { d, x: (x1 + x2) / 2 + 0.75 * (bulge - (x1 + x2) / 2) + 6, y: (y1 + y2) / 2 + 4, anchor: "start" };
}

function edge(e, route) {
  const text = e.when ?? (e.kind === "else" ? "else" : null);
  // "{{ result.is_hot }}" reads as result.is_hot; the full text is in the tooltip. A halo keeps the label
  // readable where it crosses other arrows.
  const shown = text && text.replace(/^\{\{\s*|\s*\}\}$/g, "");
  const label = text
    ? s("text", { x: route.x, y: route.y, "text-anchor": route.anchor || "middle", stroke: "#f6f7f9", "stroke-width": 4, "paint-order": "stroke" }, s("title", {}, text), clip(shown, LABEL))
    : null;
  return s("g", { class: `edge kind-${e.kind}`, "data-from": e.from, "data-to": e.to }, s("title", {}, `${e.from} → ${e.to}${text ? `: ${text}` : ""}`), s("path", { d: route.d, "marker-end": "url(#arrow)" }), label);
}

function node(n, { x, y }, graph, execution) {
  const state = graph.statuses ? graph.statuses[n.name] : undefined;
  const runs = graph.runs ? graph.runs[n.name] || 0 : 0;
  const classes = ["node", n.iterator ? "iterator" : "", state ? `status-${state.toLowerCase()}` : execution ? "status-not-run" : ""];
  const href = execution ? `#/executions/${encodeURIComponent(execution)}${query({ step: n.name })}` : link(["catalog", ...graph.path.split("/")], { v: graph.version, line: n.line });
  const kind = (n.iterator ? "↻ iterator" + (n.body ? ` · ${n.body}` : "") : n.type) + (runs > 1 ? ` · ×${runs}` : "");
  const tip = [n.name, `type: ${n.type}${n.body ? ` (each item: ${n.body})` : ""}`, n.desc, execution ? `status: ${state || "not run"}${runs ? `, runs: ${runs}` : ""}` : null];
  return s(
    "g",
    { class: classes.filter(Boolean).join(" "), "data-step": n.name, "data-status": state || "", transform: `translate(${x},${y})` },
    s(
      "a",
      { href },
      s("title", {}, tip.filter(Boolean).join("\n")),
      s("rect", { width: W, height: H, rx: 5 }),
      s("text", { x: 10, y: 20, "font-weight": 600 }, clip(n.name, 24)),
      s("text", { x: 10, y: 38, class: "kind", fill: "#667085" }, clip(kind, execution ? 18 : 26)), // room for the status
      execution ? s("text", { x: W - 8, y: 38, "text-anchor": "end", class: "state", "font-size": 10, fill: "#667085" }, state ? state.toLowerCase() : "not run") : null,
    ),
  );
}

// New colours and status texts on the boxes already drawn.
function paint(holder, graph) {
  for (const g of holder.querySelectorAll("g.node")) {
    const name = g.dataset.step;
    const state = graph.statuses[name];
    for (const c of [...g.classList]) if (c.startsWith("status-")) g.classList.remove(c);
    g.classList.add(state ? `status-${state.toLowerCase()}` : "status-not-run");
    g.setAttribute("data-status", state || "");
    const label = g.querySelector("text.state");
    if (label) label.textContent = state ? state.toLowerCase() : "not run";
  }
}

function clip(text, n) {
  const one = String(text).replace(/\s+/g, " ").trim();
  return one.length > n ? one.slice(0, n - 1) + "…" : one;
}
