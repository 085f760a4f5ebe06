// The theme the user picked, else the system's preference, on every page; the toggle in the
// navigation switches it and the choice is kept.
(() => {
  "use strict";
  const KEY = "usage-tracker-theme";
  const system = window.matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
  const root = document.documentElement;
  root.dataset.theme = localStorage.getItem(KEY) || system;
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", () => {
      const next = root.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem(KEY, next);
      root.dataset.theme = next;
    });
  });
})();
