// Dashboard behaviour on top of server-rendered HTML (chart included): sorting and live
// refresh (the theme: theme.js).
// Everything here is optional: without JavaScript the page still shows every number.
(() => {
  "use strict";

  const sorts = {}; // the order the user picked per table, kept through the live refresh

  function sortBy(table, index, header, direction) {
    const descending = direction ?? header.getAttribute("aria-sort") !== "descending";
    sorts[table.dataset.table] = { index, descending };
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

  // A table showing its first rows fetches the rest in place (the page with it whole) before
  // its first sort: sorting only the rows in view would mislead.
  async function expand(table) {
    const section = table.closest("section");
    const url = new URL(window.location.href); // this view, with this table whole too
    url.hash = "";
    if (!url.searchParams.getAll("all").includes(table.dataset.table)) {
      url.searchParams.append("all", table.dataset.table);
    }
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const whole = page.getElementById(section.id);
    if (!whole) throw new Error("table not found");
    section.replaceWith(whole);
    history.replaceState(null, "", url); // a reload or the live refresh keeps it whole
    setupTables(whole);
    return whole.querySelector("table.sortable");
  }

  async function sortWhole(table, index) {
    if (table.dataset.more) {
      try {
        table = await expand(table);
      } catch (e) {
        window.location.href = table.dataset.more; // the plain link's way
        return;
      }
    }
    const header = table.querySelectorAll("thead th[data-sort]")[index];
    sortBy(table, index, header);
  }

  function setupTables(root) {
    root.querySelectorAll("table.sortable").forEach((table) => {
      table.querySelectorAll("thead th[data-sort]").forEach((header, index) => {
        header.tabIndex = 0;
        header.addEventListener("click", () => sortWhole(table, index));
        header.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") sortWhole(table, index);
        });
      });
    });
    root.querySelectorAll("a[data-more-link]").forEach((link) => {
      link.addEventListener("click", (e) => {
        const table = link.closest("section").querySelector("table.sortable");
        if (!table || !table.dataset.more) return;
        e.preventDefault();
        expand(table).catch(() => {
          window.location.href = link.href;
        });
      });
    });
  }

  async function refresh() {
    if (document.hidden) return;
    try {
      const asked = window.location.href;
      const response = await fetch(asked, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const html = await response.text();
      if (window.location.href !== asked) return; // a table was shown whole meanwhile
      const next = new DOMParser().parseFromString(html, "text/html");
      const content = next.getElementById("content");
      if (!content) return;
      document.getElementById("content").replaceWith(content);
      init();
    } catch (e) {
      // Offline or restarting: keep showing the last numbers; the next tick tries again.
    }
  }

  function init() {
    setupTables(document);
    for (const [key, { index, descending }] of Object.entries(sorts)) {
      const table = document.querySelector(`table.sortable[data-table="${key}"]`);
      const header = table && table.querySelectorAll("thead th[data-sort]")[index];
      if (header) sortBy(table, index, header, descending);
    }
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

  // The provider and organization selector shows a choice at once; picking one clears the
  // other (an organization has one provider), and "All" leaves its parameter out.
  function setupConnectionPick() {
    const form = document.querySelector("form[data-autosubmit]");
    if (!form) return;
    const selects = Array.from(form.querySelectorAll("select"));
    selects.forEach((select) =>
      select.addEventListener("change", () => {
        selects.filter((other) => other !== select).forEach((other) => (other.value = ""));
        selects.filter((s) => !s.value).forEach((s) => (s.disabled = true));
        form.submit();
      }),
    );
  }

  document.addEventListener("DOMContentLoaded", () => {
    init();
    setupRefresh();
    setupConnectionPick();
  });
})();
