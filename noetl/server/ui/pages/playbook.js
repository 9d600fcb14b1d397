// One catalog playbook (#/catalog/<path...>?v=N&a=A&b=B): its versions, the chosen version's YAML with line
// numbers, a diff between two versions, a link to its flow graph, and a form that runs it.
import { api, errorBox, h, link, query, when } from "/ui/lib.js";

export async function render(main, route) {
  const path = route.parts.slice(1).join("/");
  const wanted = Number(route.params.get("v")) || null;
  const [listing, entry] = await Promise.all([
    api(`/api/catalog-versions${query({ path })}`),
    api(`/api/catalog/${path.split("/").map(encodeURIComponent).join("/")}${query({ version: wanted })}`),
  ]);
  const versions = listing.versions.map((v) => v.version);
  const here = (params) => link(["catalog", ...path.split("/")], params);

  main.append(
    h(
      "div",
      { class: "header-line" },
      h("span", { class: "name" }, entry.path),
      h("span", { class: "muted" }, entry.name),
      h("span", {}, `version ${entry.version} of ${versions[0]}`),
      h("a", { href: link(["graph"], { path: entry.path, version: entry.version }), id: "graph-link" }, "flow graph"),
    ),
    runForm(entry),
    h("h2", {}, "Versions"),
    versionTable(listing.versions, entry.version, here),
    h("h2", {}, `YAML of version ${entry.version}`),
    h("div", { class: "lines", id: "yaml" }, entry.content.replace(/\n$/, "").split("\n").map((line) => h("div", {}, line))),
  );
  if (versions.length > 1) main.append(h("h2", {}, "Diff"), diffCard(path, versions, route.params, entry.version));
  // ?line=N (from a step of the flow graph): that line, marked and in view.
  const marked = main.querySelector("#yaml").children[Number(route.params.get("line")) - 1];
  if (marked) {
    marked.classList.add("marked");
    marked.style.background = "#fff4e5";
    marked.scrollIntoView({ block: "center" });
  }
}

function versionTable(list, current, here) {
  const rows = list.map((v) =>
    h(
      "tr",
      { class: v.version === current ? "current" : null, dataset: { version: v.version } },
      h("td", { class: "num" }, v.version === current ? h("b", {}, `v${v.version}`) : h("a", { href: here({ v: v.version }) }, `v${v.version}`)),
      h("td", {}, v.name),
      h("td", { title: v.created_at }, when(v.created_at)),
    ),
  );
  return h("table", { id: "versions", style: { width: "auto", minWidth: "420px" } }, h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Version"), h("th", {}, "Name"), h("th", {}, "Registered"))), h("tbody", {}, rows));
}

// Two selects (from, to); the diff is fetched again whenever either changes.
function diffCard(path, versions, params, current) {
  const pick = (id, chosen) =>
    h("select", { id, name: id }, versions.map((v) => h("option", { value: v, selected: v === chosen }, `v${v}`)));
  // By default what the shown version changed; for the first version, what the next one changed.
  const older = versions.find((v) => v < current);
  const [from, to] = older ? [older, current] : [current, versions[versions.indexOf(current) - 1]];
  const a = pick("diff-a", Number(params.get("a")) || from);
  const b = pick("diff-b", Number(params.get("b")) || to);
  const out = h("div", { class: "diff", id: "diff" });
  const show = async () => {
    out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const diff = await api(`/api/catalog-diff${query({ path, a: a.value, b: b.value })}`);
      out.replaceChildren(...diffLines(diff));
    } catch (error) {
      out.replaceChildren(errorBox(error));
    }
  };
  a.addEventListener("change", show);
  b.addEventListener("change", show);
  show();
  return h(
    "div",
    { class: "card" },
    h("div", { class: "filters" }, h("label", {}, "From", a), h("label", {}, "To", b)),
    out,
  );
}

const SIGN = { add: "+", del: "-", ctx: " " };
const num = (n) => String(n ?? "").padStart(4);

function diffLines(diff) {
  if (!diff.lines.length) return [h("p", { class: "muted" }, `v${diff.a} and v${diff.b} are the same.`)];
  const summary = h("p", { class: "muted" }, `v${diff.a} → v${diff.b}: ${diff.added} added, ${diff.removed} removed`);
  return [
    summary,
    ...diff.lines.map((line) =>
      line.op === "hunk"
        ? h("div", { class: "hunk" }, line.text)
        : h("div", { class: line.op, dataset: { op: line.op } }, h("span", { class: "muted" }, `${num(line.a_line)} ${num(line.b_line)} `), SIGN[line.op] + line.text),
    ),
  ];
}

// The run form: the payload must be a JSON object before anything is sent.
function runForm(entry) {
  const payload = h("textarea", { id: "payload", name: "payload", rows: 5, cols: 70, spellcheck: "false" }, "{}");
  const merge = h("input", { type: "checkbox", id: "merge", name: "merge" });
  const message = h("div", { class: "message", id: "run-message" });
  const form = h(
    "form",
    { class: "card", id: "run-form" },
    h("h3", {}, `Run version ${entry.version}`),
    h("label", { for: "payload" }, "Payload (JSON object, over the playbook's workload)"),
    h("div", {}, payload),
    h("label", {}, merge, " merge (deep-merge the payload instead of a shallow update)"),
    h("div", {}, h("button", { type: "submit", id: "run" }, "Run")),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    let parameters;
    try {
      parameters = JSON.parse(payload.value.trim() || "{}");
    } catch (error) {
      message.replaceChildren(errorBox(`The payload is not valid JSON: ${error.message}`));
      return;
    }
    if (parameters === null || typeof parameters !== "object" || Array.isArray(parameters)) {
      message.replaceChildren(errorBox('The payload must be a JSON object, such as {"city": "Oslo"}.'));
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const started = await api("/api/executions/run", {
        method: "POST",
        body: { path: entry.path, version: entry.version, parameters, merge: merge.checked },
      });
      location.hash = `#/executions/${encodeURIComponent(started.execution_id)}`;
    } catch (error) {
      message.replaceChildren(errorBox(error));
      button.disabled = false;
    }
  });
  return form;
}
