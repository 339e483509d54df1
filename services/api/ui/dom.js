// A small element builder: el("td", {class: "bad"}, "text", child…). Text is always text.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const row = (...cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c)));

export function fill(tbody, rows, empty) {
  const columns = tbody.parentElement.querySelectorAll("thead th").length;
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))]));
}

export function seconds(total) {
  const s = Math.max(0, Math.floor(total));
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  return (hms[0] ? [hms[0], ...hms.slice(1).map((n) => String(n).padStart(2, "0"))]
    : [hms[1], String(hms[2]).padStart(2, "0")]).join(":");
}

export const time = (iso) => (iso ? new Date(iso).toLocaleString() : "");

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}
