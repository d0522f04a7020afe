// pretroost serve: sort the table by a column, switch the chart's order. No dependencies.
"use strict";

function sortKey(cell) {
  const raw = cell.getAttribute("data-sort");
  if (raw === null || raw === "") return { empty: true };
  const x = Number(raw);
  return Number.isNaN(x) ? { text: raw } : { num: x };
}

function compare(a, b) {
  if (a.empty || b.empty) return a.empty && b.empty ? 0 : a.empty ? 1 : -1; // blanks last
  if (a.num !== undefined && b.num !== undefined) return a.num - b.num;
  const sa = a.text !== undefined ? a.text : String(a.num);
  const sb = b.text !== undefined ? b.text : String(b.num);
  return sa.localeCompare(sb, undefined, { numeric: true });
}

function cellAt(row, col) {
  // a bad row's error cell spans the value columns: it has no value for them
  let i = 0;
  for (const cell of row.cells) {
    const span = cell.colSpan || 1;
    if (col < i + span) return span > 1 ? null : cell;
    i += span;
  }
  return null;
}

function sortTable(th) {
  const table = th.closest("table");
  const col = Number(th.getAttribute("data-col"));
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach((h) => h.setAttribute("aria-sort", "none"));
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((r1, r2) => {
    const c1 = cellAt(r1, col), c2 = cellAt(r2, col);
    const k1 = c1 ? sortKey(c1) : { empty: true }, k2 = c2 ? sortKey(c2) : { empty: true };
    if (k1.empty || k2.empty) return compare(k1, k2);
    return ascending ? compare(k1, k2) : compare(k2, k1);
  });
  rows.forEach((r) => body.appendChild(r));
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("th.sortable").forEach((th) => {
    th.tabIndex = 0;
    th.addEventListener("click", () => sortTable(th));
    th.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(th); }
    });
  });
  document.querySelectorAll("button.toggle").forEach((button) => {
    button.addEventListener("click", () => {
      const figure = button.closest("figure");
      const order = button.getAttribute("data-order");
      figure.querySelectorAll("button.toggle").forEach((b) => b.classList.toggle("active", b === button));
      figure.querySelectorAll("div.svg").forEach((d) => { d.hidden = d.getAttribute("data-order") !== order; });
    });
  });
  const form = document.getElementById("ask");
  if (form) {
    form.addEventListener("submit", () => {
      const button = document.getElementById("predict");
      button.disabled = true;
      button.textContent = "Predicting…";
    });
  }
});

// coming back to the page (browser history) finds the button usable again
window.addEventListener("pageshow", () => {
  const button = document.getElementById("predict");
  if (button) { button.disabled = false; button.textContent = "Predict"; }
});
