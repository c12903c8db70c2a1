/** A few DOM helpers: elements built with text only (no HTML parsing, so no injection and
 * nothing Trusted Types would refuse), and labelled form fields. */
type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === true) el.setAttribute(name, "");
    else if (typeof value === "string") el.setAttribute(name, value);
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

let ids = 0;

/** A label and its control, linked by id (tests and screen readers find it by its label). */
export function field(label: string, control: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement): HTMLElement {
  control.id ||= `f${++ids}`;
  return h("div", {}, h("label", { for: control.id }, label), control);
}

export function input(attrs: Attrs = {}): HTMLInputElement {
  return h("input", { type: "text", autocomplete: "off", ...attrs });
}

export function button(name: string, onClick: () => void | Promise<void>, attrs: Attrs = {}): HTMLButtonElement {
  const b = h("button", { type: "button", ...attrs }, name);
  b.addEventListener("click", () => void onClick());
  return b;
}

/** A form whose submit runs `onSubmit` (no navigation: the CSP allows no form target). */
export function form(name: string, onSubmit: () => Promise<void>, ...children: Child[]): HTMLFormElement {
  const f = h("form", { "aria-label": name }, ...children);
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    void onSubmit();
  });
  return f;
}
