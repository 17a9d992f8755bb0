// Swagger UI for the shop API, reading the document the gateway serves next
// to it. Nothing is loaded from elsewhere: no validator badge, no top bar to
// load other documents, and the token given to "Authorize" lives only as
// long as the page.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "../openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
