// Dashboard behaviour on top of server-rendered HTML (chart included): theme, sorting, live
// refresh.
// Everything here is optional: without JavaScript the page still shows every number.
(() => {
  "use strict";

  const THEME_KEY = "usage-tracker-theme";

  function applyTheme(theme) {
    document.documentElement.dataset.theme = theme;
  }

  function setupTheme() {
    // The system's preference until the user picks a theme here (then that choice is kept).
    const system = window.matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
    applyTheme(localStorage.getItem(THEME_KEY) || system);
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem(THEME_KEY, next);
      applyTheme(next);
    });
  }

  function sortBy(table, index, header) {
    const descending = header.getAttribute("aria-sort") !== "descending";
    const numeric = header.dataset.sort === "num";
    const body = table.tBodies[0];
    const rows = Array.from(body.rows).filter((r) => r.cells.length > 1);
    rows.sort((a, b) => {
      const x = a.cells[index].dataset.value ?? a.cells[index].textContent;
      const y = b.cells[index].dataset.value ?? b.cells[index].textContent;
      const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return descending ? -order : order;
    });
    table.querySelectorAll("thead th").forEach((th) => th.removeAttribute("aria-sort"));
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    rows.forEach((row) => body.appendChild(row));
  }

  function setupSorting() {
    document.querySelectorAll("table.sortable").forEach((table) => {
      table.querySelectorAll("thead th[data-sort]").forEach((header, index) => {
        header.tabIndex = 0;
        header.addEventListener("click", () => sortBy(table, index, header));
        header.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") sortBy(table, index, header);
        });
      });
    });
  }

  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      const content = next.getElementById("content");
      if (!content) return;
      document.getElementById("content").replaceWith(content);
      init();
    } catch (e) {
      // Offline or restarting: keep showing the last numbers; the next tick tries again.
    }
  }

  function init() {
    setupSorting();
  }

  function setupRefresh() {
    const content = document.getElementById("content");
    const seconds = Number(content && content.dataset.refresh);
    if (!seconds) return;
    setInterval(refresh, seconds * 1000);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupTheme();
    init();
    setupRefresh();
  });
})();
