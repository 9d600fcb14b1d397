// Credentials: names, types and the catalog playbooks that use each. The API never lists values, and this
// page never asks for them.
import { api, h, link } from "/ui/lib.js";

export async function render(main) {
  const credentials = await api("/api/credentials?used_by=true");
  main.append(h("h1", {}, "Credentials"));
  if (!credentials.length) {
    main.append(h("p", { class: "muted" }, "No credential is stored yet: ", h("code", {}, "noetl credential add NAME --type TYPE --data JSON"), "."));
    return;
  }
  const usedBy = (refs) =>
    refs.length
      ? refs.map((r, i) => [i ? ", " : "", h("a", { href: link(["catalog", ...r.path.split("/")], { v: r.version }) }, `${r.path} v${r.version}`)])
      : h("span", { class: "muted" }, "no catalog playbook");
  main.append(
    h(
      "table",
      { id: "credentials" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Type"), h("th", {}, "Used by (latest versions)"))),
      h(
        "tbody",
        {},
        credentials.map((c) => h("tr", { dataset: { name: c.name } }, h("td", { class: "mono" }, c.name), h("td", {}, c.type), h("td", {}, usedBy(c.used_by || [])))),
      ),
    ),
    h("p", { class: "muted" }, "Values are stored encrypted and never shown here."),
  );
}
