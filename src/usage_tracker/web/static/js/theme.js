// The theme the user picked on the dashboard, else the system's preference, on every page.
(() => {
  "use strict";
  const system = window.matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
  document.documentElement.dataset.theme = localStorage.getItem("usage-tracker-theme") || system;
})();
