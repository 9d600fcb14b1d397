// One execution: header, timeline (a lane per step, a bar per run and attempt), each iterator as one lane
// of numbers and shapes, children, and the event table. While it runs, a server-sent event stream pushes
// the new view whenever events are stored; the page never holds one element per item.
import { api, errorBox, h, json, link, number, query, s, seconds, status, when } from "/ui/lib.js";

const EVENT_PAGE = 100;
const EVENT_TYPES = [
  "execution_start", "step_started", "action_started", "iterator_started", "iteration_started", "save_started",
  "save_completed", "save_failed", "save_error", "iteration_completed", "iteration_failed", "iterator_completed",
  "iterator_failed", "action_completed", "action_error", "action_retry", "step_completed", "step_failed",
  "execution_complete", "execution_failed",
];

export async function render(main, route) {
  const id = route.parts[1];
  const header = h("section", { id: "execution-header" });
  const timeline = h("section", { class: "card", id: "timeline" });
  const iterators = h("section", { id: "iterators" });
  const children = h("section", { id: "children" });
  const table = h("section", { class: "card", id: "events" });
  // The event table's first page is asked for while the server sums the execution up.
  const events = eventTable(table, id, route.params);
  const view = await api(`/api/views/executions/${encodeURIComponent(id)}`);
  main.append(header, timeline, iterators, children, table);

  let current = view;
  const draw = (v) => {
    current = v;
    header.replaceChildren(...headerOf(v));
    timeline.replaceChildren(h("h2", {}, "Timeline"), gantt(v));
    iterators.replaceChildren(...Object.values(v.iterators).map((it) => iteratorPanel(v, it)));
    if (v.children && v.children.length) children.replaceChildren(childList(v.children));
  };
  draw(view);
  events.steps(view.lanes.map((l) => l.step));

  let source = null;
  if (view.finished === null) {
    source = new EventSource(`/api/views/executions/${encodeURIComponent(id)}/stream${query({ after: view.last_seq })}`);
    source.addEventListener("view", (message) => {
      const v = JSON.parse(message.data);
      draw({ ...v, children: current.children });
      events.stale();
      events.steps(v.lanes.map((l) => l.step));
    });
    source.addEventListener("end", async () => {
      source.close();
      try {
        draw(await api(`/api/views/executions/${encodeURIComponent(id)}`));
      } catch {
        /* the last streamed view stays */
      }
    });
  }
  return () => source && source.close();
}

// ---- header ------------------------------------------------------------------------------------------

function headerOf(v) {
  const out = [
    h(
      "div",
      { class: "header-line" },
      h("span", { class: "name", id: "execution-name" }, v.playbook || v.path || v.execution_id),
      v.version ? h("span", { class: "muted" }, `v${v.version}`) : h("span", { class: "muted" }, "file"),
      h("span", { id: "execution-status" }, status(v.status)),
      h("span", {}, seconds(v.duration)),
      h("span", { class: "muted" }, `started ${v.started ? when(new Date(v.started * 1000).toISOString()) : "–"}`),
      h("a", { href: link(["executions", v.execution_id, "graph"]) }, "flow graph"),
      v.path && v.version ? h("a", { href: link(["catalog", ...v.path.split("/")], { v: v.version }) }, "playbook") : null,
      v.parent_execution_id ? h("a", { href: link(["executions", v.parent_execution_id]) }, "parent execution") : null,
    ),
    h("div", { class: "facts mono" }, h("span", {}, v.execution_id), v.source ? h("span", {}, v.source) : null),
  ];
  const line = headline(v);
  if (line) out.push(line);
  out.push(
    h(
      "div",
      { class: "facts" },
      details("Payload", v.payload, "payload"),
      v.finished !== null && v.status === "COMPLETED" ? details("Result", v.result, "result") : null,
    ),
  );
  return out;
}

function headline(v) {
  const hl = v.headline;
  if (!hl) return null;
  if (hl.kind === "failed") {
    const parts = [`step ${hl.step || "?"} failed`];
    if (hl.item) parts.push(`: item #${hl.item.index}${hl.item.item ? ` (${hl.item.item})` : ""}: ${hl.item.error || ""}`);
    else if (hl.error) parts.push(`: ${hl.error}`);
    return h(
      "div",
      { class: "error-box", id: "headline", role: "alert" },
      "! ",
      hl.item && hl.step
        ? h("a", { href: link(["executions", v.execution_id, "items", hl.step, String(hl.item.index)]) }, parts.join(""))
        : parts.join(""),
    );
  }
  const steps = Object.entries(hl.steps).map(([step, n]) => `${number(n)} in ${step}`).join(", ");
  return h("div", { class: "warn-box", id: "headline", role: "status" }, `${v.status}, but ${number(hl.failed)} item${hl.failed === 1 ? "" : "s"} failed (${steps})`);
}

function details(label, value, idName) {
  if (value === null || value === undefined) return null;
  return h("details", { id: idName }, h("summary", {}, label), json(value));
}

// ---- timeline ------------------------------------------------------------------------------------------

const LABEL = 170, ROW = 24, AXIS = 22, WIDTH = 1100;

function gantt(v) {
  const t0 = v.started || Math.min(...v.lanes.flatMap((l) => l.runs.map((r) => r.started)));
  const t1 = Math.max(v.finished || Date.now() / 1000, t0 + 0.001);
  const span = t1 - t0;
  const x = (t) => LABEL + ((Math.min(Math.max(t, t0), t1) - t0) / span) * (WIDTH - LABEL - 10);
  const height = AXIS + v.lanes.length * ROW + 6;
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, width: "100%", role: "img", "aria-label": "timeline" });
  const axis = s("g", { class: "axis" });
  for (const tick of ticks(span)) {
    const px = x(t0 + tick);
    axis.append(
      s("line", { x1: px, x2: px, y1: AXIS - 4, y2: height, stroke: "#eceff3" }),
      s("text", { x: px + 2, y: 12 }, seconds(tick)),
    );
  }
  svg.append(axis);
  v.lanes.forEach((lane, i) => {
    const y = AXIS + i * ROW;
    const g = s("g", { class: "lane", "data-step": lane.step });
    g.append(s("text", { x: 4, y: y + 15 }, lane.iterator ? `↻ ${lane.step}` : lane.step));
    lane.runs.forEach((run) => {
      const end = run.finished ?? Date.now() / 1000;
      const pieces = run.attempts.length ? run.attempts : [{ attempt: 1, started: run.started, finished: run.finished, status: run.status }];
      pieces.forEach((a, k) => {
        const aEnd = a.finished ?? end;
        const x0 = x(a.started);
        const w = Math.max(x(aEnd) - x0, 2);
        const title = `${lane.step} run ${run.run} attempt ${a.attempt}: ${a.status} ${seconds(aEnd - a.started)}${a.error ? `\n${a.error}` : ""}`;
        g.append(
          s("rect", { class: `bar bar-${(a.status || "pending").toLowerCase()}`, x: x0, y: y + 4, width: w, height: ROW - 9, rx: 2, "data-run": run.run, "data-attempt": a.attempt }, s("title", {}, title)),
        );
        const next = pieces[k + 1];
        if (next && a.finished) {
          // the wait between a failed attempt and the next one (retry delay)
          const wx = x(a.finished);
          g.append(s("rect", { class: "bar-wait", x: wx, y: y + 7, width: Math.max(x(next.started) - wx, 1), height: ROW - 15 }, s("title", {}, `waited ${seconds(next.started - a.finished)} before attempt ${next.attempt}`)));
        }
      });
      if (run.runs > 1 || lane.runs.length > 1) g.append(s("text", { x: x(run.started) + 2, y: y + 2, class: "muted", "font-size": 9 }, `#${run.run}`));
    });
    svg.append(g);
  });
  return h("div", { class: "gantt" }, svg, h("div", { class: "muted legend" }, "bars: one per step run and attempt; dashed: waiting for a retry; ↻ iterator (its items are summed up below)"));
}

function ticks(span) {
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200];
  const step = steps.find((st) => span / st <= 8) || span / 8;
  const out = [];
  for (let t = 0; t <= span + 1e-9; t += step) out.push(t);
  return out;
}

// ---- iterators -------------------------------------------------------------------------------------------

function iteratorPanel(v, it) {
  const total = it.count || 0;
  const pct = (n) => (total ? `${(100 * n) / total}%` : "0%");
  const count = (cls, n, label) => h("span", { class: `count ${cls}`, "data-count": cls }, h("span", { class: "n" }, number(n)), ` ${label}`);
  const goto = h("input", { type: "number", min: 0, max: Math.max(total - 1, 0), placeholder: "index", name: "goto" });
  const gotoForm = h("form", { class: "goto" }, h("span", { class: "muted" }, "item #"), goto, h("button", { type: "submit" }, "go"));
  gotoForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (goto.value !== "") location.hash = link(["executions", v.execution_id, "items", it.step, goto.value]);
  });
  const itemLink = (index, text) => h("a", { href: link(["executions", v.execution_id, "items", it.step, String(index)]) }, text);
  return h(
    "div",
    { class: "card iterator", "data-step": it.step, "data-status": it.status },
    h("h2", {}, `↻ ${it.step} `, status(it.status), h("span", { class: "muted" }, ` ${it.mode || ""}${it.concurrency && it.mode === "async" ? ` ×${it.concurrency}` : ""}`)),
    h(
      "div",
      { class: "counts" },
      count("done", it.done, "done"),
      count("failed", it.failed, "failed"),
      count("running", it.running, "running"),
      it.queued !== null ? count("queued", it.queued, "queued") : null,
      it.skipped ? count("skipped", it.skipped, "skipped") : null,
      h("span", { class: "count total", "data-count": "total" }, "of ", h("span", { class: "n" }, number(it.count)), " items"),
      it.kept ? h("span", { class: "count kept muted", "data-count": "kept" }, `(${number(it.kept)} of ${number(it.total)} kept from an earlier run)`) : null,
    ),
    h(
      "div",
      { class: "progress", title: `${number(it.done)} done, ${number(it.failed)} failed, ${number(it.running)} running` },
      h("span", { class: "done", style: { width: pct(it.done) } }),
      h("span", { class: "failed", style: { width: pct(it.failed) } }),
      h("span", { class: "running", style: { width: pct(it.running) } }),
    ),
    h(
      "div",
      { class: "facts figures" },
      h("span", {}, "items/s ", h("b", { "data-figure": "rate" }, it.items_per_second ? it.items_per_second.toFixed(it.items_per_second < 10 ? 2 : 0) : "–")),
      h("span", {}, "p50 ", h("b", { "data-figure": "p50" }, seconds(it.p50))),
      h("span", {}, "p95 ", h("b", { "data-figure": "p95" }, seconds(it.p95))),
      h("span", {}, "max ", h("b", { "data-figure": "max" }, seconds(it.max))),
      h("span", {}, "elapsed ", h("b", {}, seconds(it.elapsed))),
      h("span", {}, "ETA ", h("b", { "data-figure": "eta" }, it.finished ? "–" : it.eta !== null ? seconds(it.eta) : "…")),
      it.rows_saved ? h("span", {}, "rows saved ", h("b", {}, number(it.rows_saved))) : null,
    ),
    h("div", { class: "charts" }, histogram(it.histogram), density(it.density)),
    h(
      "div",
      { class: "failures", "data-failures": it.failures_total },
      h("h3", {}, `Failed items (${number(it.failures_total)})`),
      it.failures_total
        ? h(
            "div",
            { class: "itemlist" },
            it.failures.map((f) =>
              itemLink(f.index, `#${f.index}${f.item ? ` ${f.item}` : ""}: ${(f.error || "").slice(0, 90)}`),
            ),
            it.failures_total > it.failures.length
              ? h("a", { href: link(["executions", v.execution_id], { type: "iteration_failed", step: it.step }) + "#events" }, `all ${number(it.failures_total)} failures in the event table`)
              : null,
          )
        : h("span", { class: "muted" }, "none"),
    ),
    h(
      "div",
      { class: "slowest" },
      h("h3", {}, "Slowest items"),
      it.slowest.length ? h("div", { class: "itemlist" }, it.slowest.map((sl) => itemLink(sl.index, `#${sl.index} ${seconds(sl.duration)}`))) : h("span", { class: "muted" }, "–"),
    ),
    h("div", { class: "actions" }, gotoForm, retryButton(v, it)),
  );
}

// Run the failed items again (noetl retry): only once the execution has ended, and the step's latest
// run of its iterator had failures.
function retryButton(v, it) {
  if (v.finished === null || !it.failures_total || it.status === "RUNNING") return null;
  const message = h("span", { class: "message" });
  const button = h("button", { class: "primary", id: `retry-${it.step}`, type: "button" }, `Retry ${number(it.failures_total)} failed item${it.failures_total === 1 ? "" : "s"}`);
  button.addEventListener("click", async () => {
    if (!confirm(`Run the ${it.failures_total} failed items of ${it.step} again? The items that succeeded keep their results; the steps after it run again.`)) return;
    button.disabled = true;
    try {
      await api(`/api/executions/${encodeURIComponent(v.execution_id)}/retry`, { method: "POST", body: { step: it.step } });
      window.dispatchEvent(new HashChangeEvent("hashchange")); // draw the page again: it follows the new run
    } catch (error) {
      button.disabled = false;
      message.replaceChildren(errorBox(error));
    }
  });
  return h("span", {}, button, message);
}

function histogram(hist) {
  if (!hist) return null;
  const bins = hist.done.length;
  const max = Math.max(1, ...hist.done.map((d, i) => d + hist.failed[i]));
  const W = 300, H = 60, bw = W / bins;
  const svg = s("svg", { width: W, height: H + 14, viewBox: `0 0 ${W} ${H + 14}`, "aria-label": "histogram of item durations" });
  hist.done.forEach((d, i) => {
    const f = hist.failed[i];
    const hd = (H * d) / max, hf = (H * f) / max;
    const title = `${seconds(hist.edges[i])} – ${seconds(hist.edges[i + 1])}: ${number(d)} done${f ? `, ${number(f)} failed` : ""}`;
    svg.append(s("rect", { x: i * bw + 0.5, y: H - hd - hf, width: bw - 1, height: hd }, s("title", {}, title)));
    if (f) svg.append(s("rect", { class: "failed", x: i * bw + 0.5, y: H - hf, width: bw - 1, height: hf }, s("title", {}, title)));
  });
  svg.append(
    s("text", { x: 0, y: H + 12, "font-size": 10, fill: "#667085" }, seconds(hist.edges[0])),
    s("text", { x: W, y: H + 12, "font-size": 10, fill: "#667085", "text-anchor": "end" }, seconds(hist.edges[hist.edges.length - 1])),
  );
  return h("div", { class: "chart", id: "histogram" }, h("div", { class: "label" }, "item durations (log scale)"), svg);
}

function density(d) {
  if (!d) return null;
  const W = 360, H = 60, bw = W / d.counts.length;
  const max = Math.max(1, ...d.counts);
  const svg = s("svg", { width: W, height: H + 14, viewBox: `0 0 ${W} ${H + 14}`, "aria-label": "items ended over time" });
  d.counts.forEach((c, i) => {
    const hh = (H * c) / max;
    svg.append(s("rect", { x: i * bw + 0.25, y: H - hh, width: Math.max(bw - 0.5, 0.5), height: hh }, s("title", {}, `${seconds(i * d.width)}–${seconds((i + 1) * d.width)}: ${number(c)} items ended`)));
  });
  svg.append(s("text", { x: W, y: H + 12, "font-size": 10, fill: "#667085", "text-anchor": "end" }, seconds(d.width * d.counts.length)));
  return h("div", { class: "chart", id: "density" }, h("div", { class: "label" }, "items ended over time"), svg);
}

function childList(kids) {
  return h(
    "div",
    { class: "card" },
    h("h2", {}, `Child executions (${kids.length})`),
    h(
      "table",
      {},
      h("tbody", {}, kids.map((c) => h("tr", {}, h("td", {}, status(c.status)), h("td", {}, h("a", { href: link(["executions", c.execution_id]) }, c.playbook_path)), h("td", {}, when(c.created_at)), h("td", { class: "muted" }, c.error || "")))),
    ),
  );
}

// ---- the event table -----------------------------------------------------------------------------------

function eventTable(root, id, params) {
  const filter = {
    type: params.get("type") || "",
    step: params.get("step") || "",
    status: params.get("status") || "",
    index: params.get("index") || "",
  };
  const trail = [0]; // the `after` of each page seen, for "previous"
  const body = h("tbody", {});
  const pager = h("div", { class: "pager" });
  const note = h("span", { class: "muted" });
  const select = (name, options) => {
    const el = h("select", { name }, h("option", { value: "" }, "any"), options.map((o) => h("option", { value: o, selected: o === filter[name] }, o)));
    el.addEventListener("change", () => {
      filter[name] = el.value;
      trail.splice(1);
      load();
    });
    return el;
  };
  const stepSelect = select("step", filter.step ? [filter.step] : []);
  const index = h("input", { type: "number", min: 0, name: "index", value: filter.index, style: { width: "90px" } });
  index.addEventListener("change", () => {
    filter.index = index.value;
    trail.splice(1);
    load();
  });
  root.append(
    h("h2", {}, "Events"),
    h(
      "div",
      { class: "filters" },
      h("label", {}, "Type", select("type", EVENT_TYPES)),
      h("label", {}, "Step", stepSelect),
      h("label", {}, "Status", select("status", ["STARTED", "RUNNING", "COMPLETED", "FAILED", "RETRYING", "SKIPPED"])),
      h("label", {}, "Item index", index),
      note,
    ),
    h("table", { class: "event-table" }, h("thead", {}, h("tr", {}, ["seq", "time", "type", "step", "item", "attempt", "status", "duration", "error"].map((c) => h("th", {}, c)))), body),
    pager,
  );

  async function load() {
    const after = trail[trail.length - 1];
    const q = { after, limit: EVENT_PAGE, type: filter.type, step: filter.step, status: filter.status, index: filter.index };
    try {
      const page = await api(`/api/executions/${encodeURIComponent(id)}/events${query(q)}`);
      body.replaceChildren(...page.events.map(eventRow));
      if (!page.events.length) body.append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "no events match")));
      pager.replaceChildren(
        h("button", { disabled: trail.length < 2, onclick: () => { trail.pop(); load(); } }, "‹ Previous"),
        h("span", { class: "muted" }, page.events.length ? `seq ${page.events[0].seq}–${page.events[page.events.length - 1].seq}` : ""),
        h("button", { disabled: !page.more, onclick: () => { trail.push(page.last_seq); load(); } }, "Next ›"),
      );
      note.textContent = "";
    } catch (error) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 9 }, errorBox(error))));
    }
  }

  function eventRow(e) {
    const tr = h(
      "tr",
      { class: "event", "data-type": e.event_type },
      h("td", { class: "num" }, e.seq),
      h("td", { class: "mono" }, e.created_at ? e.created_at.slice(11, 23) : ""),
      h("td", {}, e.event_type),
      h("td", {}, e.node_name || ""),
      h("td", { class: "num" }, e.current_index !== null ? h("a", { href: link(["executions", id, "items", e.node_name, String(e.current_index)]) }, e.current_index) : ""),
      h("td", { class: "num" }, e.attempt ?? ""),
      h("td", {}, status(e.status)),
      h("td", { class: "num" }, e.duration !== null ? seconds(e.duration) : ""),
      h("td", { class: "muted", title: e.error || "" }, (e.error || "").slice(0, 120)),
    );
    tr.addEventListener("click", (ev) => {
      if (ev.target.closest("a")) return;
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("event-detail")) {
        next.remove();
        return;
      }
      tr.after(h("tr", { class: "event-detail" }, h("td", { colspan: 9 }, json(e))));
    });
    return tr;
  }

  load();
  let lastStale = 0;
  return {
    steps(names) {
      for (const name of names) {
        if (![...stepSelect.options].some((o) => o.value === name)) stepSelect.append(h("option", { value: name }, name));
      }
    },
    // a live page: new events were stored; refresh the page the user is on if it is the last one
    // (at most every 2 s: the numbers above move at once, the table needs not)
    stale() {
      if (!pager.querySelector("button:last-child")?.disabled || Date.now() - lastStale < 2000) return;
      lastStale = Date.now();
      load();
    },
  };
}
