// One item of an iterator step, like a small execution page: input, result, error and traceback,
// attempts, save rows, and its events.
import { api, h, json, link, seconds, status } from "/ui/lib.js";

export async function render(main, route) {
  const [, id, , step, index] = route.parts;
  const item = await api(`/api/views/executions/${encodeURIComponent(id)}/items/${encodeURIComponent(step)}/${encodeURIComponent(index)}`);
  const n = Number(index);
  main.append(
    h(
      "div",
      { class: "header-line" },
      h("a", { href: link(["executions", id]) }, "‹ execution"),
      h("span", { class: "name", id: "item-title" }, `${step} · item #${index}`),
      h("span", { id: "item-status" }, status(item.status)),
      h("span", {}, seconds(item.duration)),
      n > 0 ? h("a", { href: link(["executions", id, "items", step, String(n - 1)]) }, `‹ #${n - 1}`) : null,
      h("a", { href: link(["executions", id, "items", step, String(n + 1)]) }, `#${n + 1} ›`),
    ),
    item.error
      ? h("div", { class: "error-box", id: "item-error", role: "alert" }, item.error_type ? `${item.error_type}: ` : "", item.error)
      : null,
    h("div", { class: "card" }, h("h2", {}, "Input"), json(item.input)),
    item.result !== null && item.result !== undefined ? h("div", { class: "card" }, h("h2", {}, "Result"), json(item.result)) : null,
    item.traceback ? h("div", { class: "card" }, h("h2", {}, "Traceback"), h("pre", { class: "code", id: "item-traceback" }, item.traceback)) : null,
    h(
      "div",
      { class: "card" },
      h("h2", {}, `Attempts (${item.attempts.length})`),
      table(["attempt", "status", "duration", "error"], item.attempts.map((a) => [a.attempt ?? "", status(a.status), seconds(a.duration), a.error || ""])),
    ),
    h(
      "div",
      { class: "card", id: "item-saves" },
      h("h2", {}, `Saves (${item.saves.length} events)`),
      item.saves.length
        ? table(
            ["seq", "event", "status", "storage", "rows", "attempt", "reason", "error"],
            item.saves.map((e) => [e.seq, e.event_type, status(e.status), e.meta.storage || "", e.meta.rows ?? "", e.meta.attempt ?? "", e.meta.reason || "", e.error || ""]),
            "save",
          )
        : h("span", { class: "muted" }, "this item has no save"),
    ),
    h(
      "div",
      { class: "card" },
      h("h2", {}, `Events (${item.events.length})`),
      table(
        ["seq", "time", "type", "attempt", "status", "duration", "error"],
        item.events.map((e) => [e.seq, (e.created_at || "").slice(11, 23), e.event_type, e.attempt ?? "", status(e.status), e.duration !== null ? seconds(e.duration) : "", e.error || ""]),
      ),
    ),
  );
}

function table(columns, rows, kind) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", { class: kind || "" }, r.map((cell) => h("td", {}, cell))))),
  );
}
