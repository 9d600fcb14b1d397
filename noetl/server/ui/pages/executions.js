// Executions: newest first, filters, paging, children under their parent, live progress of running loops.
import { api, every, h, link, number, query, seconds, status, when } from "/ui/lib.js";

const PAGE = 25;
const REFRESH_MS = 2000;

export async function render(main, route) {
  const params = route.params;
  const state = {
    status: params.get("status") || "",
    playbook: params.get("playbook") || "",
    since: params.get("since") || "",
    until: params.get("until") || "",
    offset: Number(params.get("offset") || 0),
  };
  const expanded = new Set();
  const body = h("tbody", { id: "executions-body" });
  const pager = h("div", { class: "pager" });
  const note = h("span", { class: "muted", id: "executions-total" });

  const input = (name, attrs) => {
    const el = h("input", { name, value: state[name], ...attrs });
    el.addEventListener("change", () => go({ ...state, [name]: el.value, offset: 0 }));
    return el;
  };
  const statusSelect = h(
    "select",
    { name: "status" },
    ["", "RUNNING", "COMPLETED", "FAILED"].map((s) => h("option", { value: s, selected: s === state.status }, s || "any")),
  );
  statusSelect.addEventListener("change", () => go({ ...state, status: statusSelect.value, offset: 0 }));

  main.append(
    h("h1", {}, "Executions"),
    h(
      "div",
      { class: "filters" },
      h("label", {}, "Status", statusSelect),
      h("label", {}, "Playbook", input("playbook", { placeholder: "part of the path", type: "search" })),
      h("label", {}, "Started after", input("since", { type: "datetime-local" })),
      h("label", {}, "Started before", input("until", { type: "datetime-local" })),
      note,
    ),
    h(
      "table",
      { class: "executions" },
      h(
        "thead",
        {},
        h("tr", {}, ["Status", "Playbook", "Version", "Started", "Duration", "Progress", "Execution"].map((c) => h("th", {}, c))),
      ),
      body,
    ),
    pager,
  );

  function go(next) {
    const q = {};
    for (const k of ["status", "playbook", "since", "until"]) if (next[k]) q[k] = next[k];
    if (next.offset) q.offset = next.offset;
    location.hash = link(["executions"], q);
  }

  function filters(extra) {
    return query({
      status: state.status,
      playbook: state.playbook,
      since: state.since ? new Date(state.since).toISOString() : "",
      until: state.until ? new Date(state.until).toISOString() : "",
      ...extra,
    });
  }

  async function load() {
    const page = await api(`/api/views/executions${filters({ roots: !state.playbook && !state.status, limit: PAGE, offset: state.offset })}`);
    const rows = [];
    for (const e of page.executions) {
      rows.push(row(e, false));
      if (expanded.has(e.execution_id)) {
        const kids = await api(`/api/views/executions${query({ parent: e.execution_id, limit: 200 })}`);
        for (const c of kids.executions) rows.push(row(c, true));
      }
    }
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No executions yet. Run one with `noetl run PLAYBOOK.yaml`, or from the Catalog."))]));
    note.textContent = `${number(page.total)} execution${page.total === 1 ? "" : "s"}`;
    const last = Math.min(state.offset + PAGE, page.total);
    pager.replaceChildren(
      h("button", { disabled: state.offset === 0, onclick: () => go({ ...state, offset: Math.max(0, state.offset - PAGE) }) }, "‹ Newer"),
      h("span", {}, page.total ? `${state.offset + 1}–${last} of ${number(page.total)}` : ""),
      h("button", { disabled: last >= page.total, onclick: () => go({ ...state, offset: state.offset + PAGE }) }, "Older ›"),
    );
  }

  function row(e, child) {
    const started = Date.parse(e.created_at) / 1000;
    const ended = e.finished_at ? Date.parse(e.finished_at) / 1000 : Date.now() / 1000;
    const toggle = e.children
      ? h(
          "button",
          {
            class: "link-dark",
            title: "children",
            onclick: (event) => {
              event.stopPropagation();
              if (expanded.has(e.execution_id)) expanded.delete(e.execution_id);
              else expanded.add(e.execution_id);
              load();
            },
          },
          `${expanded.has(e.execution_id) ? "▾" : "▸"} ${e.children} child${e.children === 1 ? "" : "ren"}`,
        )
      : null;
    return h(
      "tr",
      { class: child ? "child" : "", dataset: { execution: e.execution_id, status: e.status } },
      h("td", {}, status(e.status)),
      h("td", {}, h("a", { href: link(["executions", e.execution_id]) }, e.playbook_path || "(unnamed)"), " ", toggle),
      h("td", { class: "num" }, e.version ?? "file"),
      h("td", {}, when(e.created_at)),
      h("td", { class: "num" }, seconds(ended - started)),
      h("td", { class: "progress-cell" }, progress(e)),
      h("td", { class: "mono muted" }, h("a", { href: link(["executions", e.execution_id]) }, e.execution_id.slice(0, 8))),
    );
  }

  await load();
  return every(REFRESH_MS, () => load().catch(() => {}));
}

function progress(e) {
  if (!e.progress || !e.progress.length) return e.error ? h("span", { class: "muted", title: e.error }, e.error.slice(0, 60)) : "";
  return e.progress.map((p) => {
    const total = p.count || 0;
    const pct = (n) => (total ? `${(100 * n) / total}%` : "0%");
    return h(
      "div",
      { class: "mini-progress", dataset: { step: p.step } },
      h("span", { class: "muted" }, `${p.step}: `),
      h("b", { class: "done-count" }, number(p.done)),
      ` / ${number(total)}`,
      p.failed ? h("span", { class: "failed-text" }, ` (${number(p.failed)} failed)`) : "",
      h(
        "div",
        { class: "progress" },
        h("span", { class: "done", style: { width: pct(p.done) } }),
        h("span", { class: "failed", style: { width: pct(p.failed) } }),
        h("span", { class: "running", style: { width: pct(p.running) } }),
      ),
    );
  });
}
