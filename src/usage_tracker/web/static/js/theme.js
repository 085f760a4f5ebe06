// The theme the user picked on the dashboard, on pages without the dashboard's script.
(() => {
  "use strict";
  const theme = localStorage.getItem("usage-tracker-theme");
  if (theme) document.documentElement.dataset.theme = theme;
})();
