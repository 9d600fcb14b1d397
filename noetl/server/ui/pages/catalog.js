// The catalog: every registered playbook with its latest version, each linking to its page.
import { api, h, link, when } from "/ui/lib.js";

export async function render(main) {
  const playbooks = await api("/api/catalog");
  main.append(h("h1", {}, "Catalog"));
  if (!playbooks.length) {
    main.append(
      h("p", { class: "muted" }, "No playbook is registered yet: ", h("code", {}, "noetl register FILE"), " or POST /api/catalog/register."),
    );
    return;
  }
  const rows = playbooks.map((p) =>
    h(
      "tr",
      { dataset: { path: p.path } },
      h("td", {}, h("a", { href: link(["catalog", ...p.path.split("/")]) }, p.path)),
      h("td", {}, p.name),
      h("td", { class: "num" }, h("a", { href: link(["catalog", ...p.path.split("/")], { v: p.version }) }, `v${p.version}`)),
      h("td", { title: p.created_at }, when(p.created_at)),
      h("td", {}, h("a", { href: link(["graph"], { path: p.path }) }, "graph")),
    ),
  );
  main.append(
    h(
      "table",
      { id: "catalog" },
      h("thead", {}, h("tr", {}, h("th", {}, "Path"), h("th", {}, "Name"), h("th", { class: "num" }, "Latest"), h("th", {}, "Last registered"), h("th", {}, ""))),
      h("tbody", {}, rows),
    ),
  );
}
