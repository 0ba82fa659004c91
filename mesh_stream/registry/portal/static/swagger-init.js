// Starts the vendored Swagger UI on the registry's own OpenAPI document (no CDN, no inline
// script). validatorUrl null: Swagger UI would otherwise send the document to
// validator.swagger.io, a request to another site the CSP refuses anyway.
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();
