// Starts Swagger UI on the vendored bundle (a static file, so the page keeps a strict CSP).
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: root.dataset.spec, dom_id: "#swagger-ui" });
});
