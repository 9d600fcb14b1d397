// The UI's router: one page module per route, each `render(main, route)` returning an optional dispose().
import { api, errorBox, route, session } from "/ui/lib.js";

const pages = {
  executions: () => import("/ui/pages/executions.js"),
  execution: () => import("/ui/pages/execution.js"),
  item: () => import("/ui/pages/item.js"),
  catalog: () => import("/ui/pages/catalog.js"),
  playbook: () => import("/ui/pages/playbook.js"),
  graph: () => import("/ui/pages/graph.js"),
  credentials: () => import("/ui/pages/credentials.js"),
  signin: () => import("/ui/pages/signin.js"),
};

// "#/executions/ID/items/STEP/INDEX" -> item page; "#/executions/ID" -> execution; "#/catalog/PATH..." -> playbook
function pick(parts) {
  const [head, ...rest] = parts;
  if (head === "executions" && rest.length >= 4 && rest[1] === "items") return "item";
  if (head === "executions" && rest.length >= 2 && rest[1] === "graph") return "graph";
  if (head === "executions" && rest.length >= 1) return "execution";
  if (head === "catalog" && rest.length >= 1) return "playbook";
  if (head === "graph") return "graph";
  if (head === "catalog" || head === "credentials" || head === "signin") return head;
  return "executions";
}

let dispose = null;
let rendering = 0;

async function show() {
  const main = document.getElementById("main");
  const current = route();
  const name = pick(current.parts);
  if (dispose) dispose();
  dispose = null;
  const mine = ++rendering;
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === (current.parts[0] || "executions")));
  try {
    const page = await pages[name]();
    if (mine !== rendering) return;
    main.replaceChildren();
    dispose = (await page.render(main, current)) || null;
  } catch (error) {
    if (mine !== rendering) return;
    if (error.status === 401) return; // the sign-in form is on its way
    main.replaceChildren(errorBox(error));
  }
}


window.addEventListener("noetl:unauthorized", () => {
  if (route().parts[0] !== "signin") location.hash = "#/signin?next=" + encodeURIComponent(location.hash);
});
window.addEventListener("hashchange", show);
document.getElementById("sign-out").addEventListener("click", async () => {
  await api("/api/session", { method: "DELETE" });
  await session();
  location.hash = "#/signin";
});

const info = await session().catch(() => ({ token_required: false, signed_in: true }));
if (info.token_required && !info.signed_in && route().parts[0] !== "signin") {
  location.hash = "#/signin?next=" + encodeURIComponent(location.hash || "#/executions");
} else {
  show();
}
