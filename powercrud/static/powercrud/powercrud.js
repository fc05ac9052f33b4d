/* powercrud: modal and toast behaviour on top of htmx. No other dependencies. */
(function () {
  "use strict";

  function modal() { return document.getElementById("pc-modal"); }

  function toast(message, kind) {
    var box = document.getElementById("pc-toasts");
    if (!box || !message) return;
    var item = document.createElement("div");
    item.className = "pc-toast pc-toast-" + (kind || "success");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 5000);
  }

  function closeModal() {
    var dialog = modal();
    if (dialog && dialog.open) dialog.close();
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      // Client errors carry a readable page (validation, permission, conflict): show it.
      window.htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "(400|403|404|409|422)", swap: true, error: false },
        { code: "...", swap: false, error: true }
      ];
      window.htmx.config.historyCacheSize = 0;
    }
    var dialog = modal();
    if (dialog) {
      dialog.addEventListener("close", function () {
        var body = document.getElementById("pc-modal-body");
        if (body) body.innerHTML = "";
      });
      dialog.addEventListener("click", function (event) {
        if (event.target === dialog) closeModal();  // click on the backdrop
      });
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "pc-modal-body") {
      var dialog = modal();
      if (dialog && !dialog.open) dialog.showModal();
      var first = event.detail.target.querySelector(
        ".pc-has-error input, .pc-has-error select, .pc-has-error textarea, " +
        "form input:not([type=hidden]), form select, form textarea, button"
      );
      if (first) first.focus();
    }
  });

  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-pc-close]");
    if (closer && modal() && modal().open) {
      event.preventDefault();
      closeModal();
    }
  });

  document.addEventListener("pcSaved", function (event) {
    closeModal();
    toast(event.detail && event.detail.message, "success");
  });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    toast("Something went wrong (" + status + "). Please try again.", "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The server could not be reached. Check your connection and try again.", "error");
  });
})();
