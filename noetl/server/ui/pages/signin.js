// The sign-in form: the token goes to POST /api/session, which keeps it in an HttpOnly cookie.
import { api, errorBox, h, session } from "/ui/lib.js";

export function render(main, route) {
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true, autofocus: true });
  const message = h("div", { class: "message" });
  const form = h(
    "form",
    { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server needs its API token (NOETL_API_TOKEN). It is kept in a cookie scripts cannot read, until you sign out."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    try {
      await api("/api/session", { method: "POST", body: { token: input.value } });
      await session();
      const next = route.params.get("next");
      location.hash = next && next.startsWith("#/") && !next.startsWith("#/signin") ? next : "#/executions";
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  });
  main.append(form);
}
