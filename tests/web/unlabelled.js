// Unlabelled form fields, nameless buttons and links (evaluated in the page).
(() => {
  const out = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label")) out.push(el.outerHTML);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    const name = (el.getAttribute("aria-label") || el.textContent || "").trim();
    if (!name) out.push(el.outerHTML);
  }
  return out;
})
