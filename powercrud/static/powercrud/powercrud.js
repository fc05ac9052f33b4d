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
        { code: "(400|403|404|409|422|503)", swap: true, error: false },
        { code: "...", swap: false, error: true }
      ];
      window.htmx.config.historyCacheSize = 0;
    }
  });

  // Delegated on document: a history restore replaces <body>, and with it the dialog.
  document.addEventListener("close", function (event) {
    if (event.target.id !== "pc-modal") return;
    var body = document.getElementById("pc-modal-body");
    if (body) body.innerHTML = "";
  }, true);  // "close" does not bubble; capture still sees it

  // A click on the backdrop closes the modal, but not a text selection dragged out of a field.
  var pressedOnBackdrop = false;
  document.addEventListener("mousedown", function (event) {
    pressedOnBackdrop = event.target.id === "pc-modal";
  });
  document.addEventListener("click", function (event) {
    if (event.target.id === "pc-modal" && pressedOnBackdrop) closeModal();
    pressedOnBackdrop = false;
  });

  // Filter and search requests leave empty fields out of the URL (?status=published, not ?q=&genre=...).
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (event.detail.verb !== "get" || !elt || elt.id !== "pc-filters") return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (name) {
      if (params[name] === "") delete params[name];
    });
  });

  // A request for the page already shown (the list refresh after a save) must not add a
  // history entry, or Back would seem to do nothing.
  document.addEventListener("htmx:beforeHistoryUpdate", function (event) {
    var update = event.detail.history;
    if (!update || update.type !== "push") return;
    var target = new URL(update.path, window.location.href);
    if (target.href === window.location.href) update.type = "replace";
  });

  // After a page change the new rows start at the top of the list, not wherever the pager was.
  document.addEventListener("htmx:afterSettle", function (event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!source || !source.closest || !source.closest(".pc-pagination")) return;
    var content = document.getElementById("pc-content");
    if (content && content.getBoundingClientRect().top < 0) content.scrollIntoView({ block: "start" });
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "pc-modal-body") {
      var dialog = modal();
      if (dialog && !dialog.open) dialog.showModal();
      // Focus the first invalid field, else the first field; showModal() already focused the
      // close button for panels without fields. (One selector list would pick document order.)
      var body = event.detail.target;
      // Django marks the invalid control itself (aria-invalid), not the bulk row's toggle.
      var first = body.querySelector("[aria-invalid=true]:not([type=hidden])") ||
        body.querySelector(".pc-has-error input, .pc-has-error select, .pc-has-error textarea") ||
        body.querySelector("[autofocus]") ||
        body.querySelector("form input:not([type=hidden]):not([disabled]), form select:not([disabled]), form textarea");
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

  // Setting a bulk field's value ticks its "change this field" toggle: a value chosen and then
  // silently left out of the edit is never what the operator meant.
  function toggleBulkRow(event) {
    var control = event.target.closest && event.target.closest(".pc-bulk-control");
    var row = control && control.closest(".pc-bulk-row");
    var toggle = row && row.querySelector(".pc-switch input[type=checkbox]");
    if (toggle && !toggle.checked) toggle.checked = true;
  }
  document.addEventListener("input", toggleBulkRow);
  document.addEventListener("change", toggleBulkRow);

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

/* Selection: row, page and shift-range ticks, kept on the server per user and per view. */
(function () {
  "use strict";
  var lastRow = null;

  function bar() { return document.getElementById("pc-selection"); }
  function rowBoxes() { return Array.prototype.slice.call(document.querySelectorAll("input.pc-select-row")); }
  function listQuery() { return window.location.search.replace(/^\?/, ""); }

  // Selection changes go to the server one at a time, in order. Sent side by side, two quick
  // ticks would each read the stored selection and the later write would drop the earlier tick;
  // htmx's own queue for one element keeps only the last waiting request, dropping ticks too.
  // The bar is the request's source: it says hx-push-url="false", so no selection POST ever
  // becomes the page's URL (the table around it pushes its sort, filter and page URLs).
  var pending = [];
  var sending = false;

  function post(values) {
    values.query = listQuery();
    pending.push(values);
    send();
  }

  function send() {
    if (sending || !pending.length) return;
    var target = bar();
    if (!target || !window.htmx) { pending = []; return; }
    sending = true;
    var next = function () { sending = false; send(); };
    window.htmx.ajax("POST", target.dataset.url, {
      source: target, target: "#pc-selection", swap: "outerHTML", values: pending.shift()
    }).then(next, next);
  }

  function syncPageBox() {
    var page = document.querySelector("input.pc-select-page");
    var boxes = rowBoxes();
    if (!page) return;
    var checked = boxes.filter(function (b) { return b.checked; }).length;
    page.checked = boxes.length > 0 && checked === boxes.length;
    page.indeterminate = checked > 0 && checked < boxes.length;
    boxes.forEach(function (b) { b.closest("tr").classList.toggle("pc-row-selected", b.checked); });
  }

  document.addEventListener("click", function (event) {
    var box = event.target.closest("input.pc-select-row");
    if (box) {
      var boxes = rowBoxes();
      var targets = [box];
      if (event.shiftKey && lastRow && lastRow !== box && boxes.indexOf(lastRow) >= 0) {
        var a = boxes.indexOf(lastRow), b = boxes.indexOf(box);
        targets = boxes.slice(Math.min(a, b), Math.max(a, b) + 1);
        targets.forEach(function (t) { t.checked = box.checked; });
      }
      lastRow = box;
      syncPageBox();
      post({ action: "set", checked: box.checked ? "1" : "0", pk: targets.map(function (t) { return t.value; }) });
      return;
    }
    var page = event.target.closest("input.pc-select-page");
    if (page) {
      var all = rowBoxes();
      all.forEach(function (t) { t.checked = page.checked; });
      syncPageBox();
      post({ action: "set", checked: page.checked ? "1" : "0", pk: all.map(function (t) { return t.value; }) });
      return;
    }
    if (event.target.closest("[data-pc-select-all]")) { post({ action: "all" }); return; }
    if (event.target.closest("[data-pc-select-clear]")) { post({ action: "clear" }); return; }
    var disabled = event.target.closest("a[aria-disabled=true]");
    if (disabled) { event.preventDefault(); event.stopPropagation(); }
  }, true);

  document.addEventListener("DOMContentLoaded", syncPageBox);
  document.addEventListener("htmx:afterSettle", syncPageBox);
})();

/* ------------------------------------------------------------------------------------------
 * Inline editing, the column chooser and saved views (mixins/inline.py, mixins/preferences.py).
 * A row in edit mode is a <tr data-pc-inline>: Enter saves it, Esc cancels it, and the list
 * does not refresh itself around it until the last edited row is saved or cancelled.
 * ------------------------------------------------------------------------------------------ */
(function () {
  "use strict";
  var refreshWaiting = false;
  var lastEdited = null;   // the key of the row whose Edit button gets the focus back
  var menuState = null;    // the menu (and control) to reopen after a preference save

  function say(message, kind) {
    var box = document.getElementById("pc-toasts");
    if (!box || !message) return;
    var item = document.createElement("div");
    item.className = "pc-toast pc-toast-" + kind;
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 5000);
  }
  function detailMessage(event) { return event.detail && event.detail.message; }
  function editedRow() { return document.querySelector("#pc-content tr[data-pc-inline]"); }

  document.addEventListener("pcInlineSaved", function (e) { say(detailMessage(e), "success"); });
  document.addEventListener("pcInlineRefused", function (e) { say(detailMessage(e), "error"); });
  document.addEventListener("pcPreferenceSaved", function (e) { say(detailMessage(e), "success"); });
  document.addEventListener("pcPreferenceRefused", function (e) { say(detailMessage(e), "error"); });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.closest) return;
    // The list's own refresh (pcSaved, pcRefresh, pcSelectionReset) waits for the edited row.
    if (elt.id === "pc-content" && editedRow()) {
      event.preventDefault();
      refreshWaiting = true;
      return;
    }
    var row = elt.closest("tr[data-pc-inline]");
    if (row) lastEdited = row.getAttribute("data-pc-inline");
    else if (elt.hasAttribute("data-pc-inline-edit")) lastEdited = elt.getAttribute("data-pc-inline-edit");
    var menu = elt.closest("details.pc-menu");
    if (menu && elt.tagName === "FORM") {
      var active = document.activeElement;
      menuState = { menu: menu.getAttribute("data-pc-menu"), key: active && active.getAttribute ? active.getAttribute("data-pc-key") : null };
    }
  });

  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (!elt || elt.tagName !== "TR") return;
    if (elt.hasAttribute("data-pc-inline")) {
      var first = elt.querySelector("[aria-invalid=true]") ||
        elt.querySelector(".pc-has-error input, .pc-has-error select, .pc-has-error textarea") ||
        elt.querySelector(".pc-inline-cell input:not([type=hidden]), .pc-inline-cell select, .pc-inline-cell textarea");
      if (first) first.focus();
      return;
    }
    var edit = elt.querySelector("[data-pc-inline-edit]");
    if (edit && lastEdited !== null && edit.getAttribute("data-pc-inline-edit") === lastEdited) edit.focus();
    lastEdited = null;
    if (refreshWaiting && !editedRow()) {
      refreshWaiting = false;
      if (window.htmx) window.htmx.trigger(document.body, "pcRefresh");
    }
  });

  // Enter saves the row (Shift+Enter and textareas keep their newline); Esc puts it back.
  document.addEventListener("keydown", function (event) {
    var row = event.target.closest && event.target.closest("tr[data-pc-inline]");
    if (!row) return;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      var cancel = row.querySelector("[data-pc-inline-cancel]");
      if (cancel) cancel.click();
    } else if (event.key === "Enter" && !event.shiftKey && !/^(TEXTAREA|BUTTON|A)$/.test(event.target.tagName)) {
      event.preventDefault();
      var form = row.querySelector("form.pc-inline-form");
      if (form && form.requestSubmit) form.requestSubmit();
    }
  }, true);

  // A double click on an editable cell edits just that cell.
  document.addEventListener("dblclick", function (event) {
    var cell = event.target.closest && event.target.closest("td[data-pc-inline-cell]");
    if (!cell || !window.htmx) return;
    var row = cell.closest("tr");
    var source = row.querySelector("[data-pc-inline-edit]");  // says hx-push-url="false"
    if (!source) return;
    lastEdited = source.getAttribute("data-pc-inline-edit");
    window.htmx.ajax("GET", cell.getAttribute("data-pc-inline-cell"), { source: source, target: row, swap: "outerHTML" });
  });

  // After a preference save the list comes back with its menu open and the same control focused.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!menuState || !target || target.id !== "pc-content") return;
    var menu = document.querySelector('#pc-content details.pc-menu[data-pc-menu="' + menuState.menu + '"]');
    if (menu) {
      menu.open = true;
      var control = menuState.key && menu.querySelector('[data-pc-key="' + menuState.key + '"]');
      (control && !control.disabled ? control : menu.querySelector("summary")).focus();
    }
    menuState = null;
  });

  // One list menu open at a time; a click elsewhere closes it.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.pc-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
  });

  // "Link" of a saved view copies its share link (and stays a plain link without a clipboard).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-pc-copy]");
    if (!link || !navigator.clipboard || !window.isSecureContext) return;
    event.preventDefault();
    navigator.clipboard.writeText(link.getAttribute("data-pc-copy")).then(
      function () { say("Link copied. Anyone who opens it sees this view of the rows they may see.", "success"); },
      function () { window.location.href = link.href; }
    );
  });
})();
