/* powercrud: modal and toast behaviour on top of htmx. No other dependencies. */
(function () {
  "use strict";

  function modal() { return document.getElementById("pc-modal"); }

  // A toast; `detail.undo_url` adds an "Undo" link (the run's page), `detail.reselect_url` a
  // "Reselect" button (puts back the selection the run cleared). A toast with actions stays
  // longer, and never goes while the pointer or focus is on it.
  function toast(message, kind, detail) {
    var box = document.getElementById("pc-toasts");
    if (!box || !message) return;
    var item = document.createElement("div");
    item.className = "pc-toast pc-toast-" + (kind || "success");
    item.textContent = message;
    detail = detail || {};
    if (detail.undo_url || detail.reselect_url) {
      var actions = document.createElement("span");
      actions.className = "pc-toast-actions";
      if (detail.undo_url) {
        var undo = document.createElement("a");
        undo.href = detail.undo_url;
        undo.textContent = "Undo…";
        undo.title = "Open the run's page, where it can be undone";
        actions.appendChild(undo);
      }
      if (detail.reselect_url && window.htmx) {
        var again = document.createElement("button");
        again.type = "button";
        again.textContent = "Reselect";
        again.addEventListener("click", function () {
          var bar = document.getElementById("pc-selection");
          window.htmx.ajax("POST", detail.reselect_url, {
            source: bar || document.body, target: bar ? "#pc-selection" : "body", swap: bar ? "outerHTML" : "none",
            values: { action: "restore" }
          });
          item.remove();
        });
        actions.appendChild(again);
      }
      item.appendChild(actions);
    }
    box.appendChild(item);
    var keep = function () { return item.matches(":hover") || item.contains(document.activeElement); };
    var expire = function () { if (keep()) setTimeout(expire, 2000); else item.remove(); };
    setTimeout(expire, detail.undo_url || detail.reselect_url ? 12000 : 5000);
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
    // A form marked data-pc-keep-modal (the progress modal's Cancel) leaves the modal open:
    // its progress goes on showing the run until it has stopped.
    var source = event.target;
    var keep = source && source.closest && source.closest("[data-pc-keep-modal]");
    if (!keep) closeModal();
    toast(event.detail && event.detail.message, "success", event.detail);
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

  // Keyboard: Space toggles the focused row (native); Shift+Space ticks the range from the last
  // row ticked to the focused one; Shift+ArrowDown/Up extend it one row, moving focus with it;
  // ArrowDown/Up alone move between the rows' checkboxes.
  function setRange(from, to, checked) {
    var boxes = rowBoxes();
    var a = boxes.indexOf(from), b = boxes.indexOf(to);
    if (a < 0) a = b;
    var targets = boxes.slice(Math.min(a, b), Math.max(a, b) + 1);
    targets.forEach(function (t) { t.checked = checked; });
    syncPageBox();
    post({ action: "set", checked: checked ? "1" : "0", pk: targets.map(function (t) { return t.value; }) });
  }

  document.addEventListener("keydown", function (event) {
    var box = event.target.closest && event.target.closest("input.pc-select-row");
    if (!box || event.altKey || event.ctrlKey || event.metaKey) return;
    var boxes = rowBoxes();
    var index = boxes.indexOf(box);
    if (event.key === " " && event.shiftKey) {
      event.preventDefault();
      var anchor = lastRow && boxes.indexOf(lastRow) >= 0 ? lastRow : box;
      setRange(anchor, box, anchor === box ? !box.checked : anchor.checked);
      lastRow = box;
      return;
    }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      var next = boxes[index + (event.key === "ArrowDown" ? 1 : -1)];
      if (!next) return;
      event.preventDefault();
      if (event.shiftKey) {  // tick this row (if it is not yet) and the next one
        var targets = box.checked ? [next] : [box, next];
        targets.forEach(function (t) { t.checked = true; });
        syncPageBox();
        post({ action: "set", checked: "1", pk: targets.map(function (t) { return t.value; }) });
        if (!lastRow || boxes.indexOf(lastRow) < 0) lastRow = box;
      }
      next.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", syncPageBox);
  document.addEventListener("htmx:afterSettle", syncPageBox);
})();

/* Accessibility and preferences: the live region, "/" to search, focus back to the opener of
   the modal, and the row-density and theme choices (stored per user by the server through their
   form, or kept in cookies for anonymous users; read by the server either way). */
(function () {
  "use strict";

  // The page's one polite live region; it stays and only its text changes.
  function liveRegion() {
    var region = document.getElementById("pc-live");
    if (!region) {
      region = document.createElement("div");
      region.id = "pc-live";
      region.className = "pc-visually-hidden";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      region.setAttribute("aria-atomic", "true");
      document.body.appendChild(region);
    }
    return region;
  }
  function announce(text) {
    if (!text) return;
    var region = liveRegion();
    // The same sentence twice in a row is still read out: the text node changes.
    region.textContent = region.textContent === text ? text + "\u00a0" : text;
  }

  var lastSelection = null;
  var progressSteps = {};
  function announceState() {
    var bar = document.getElementById("pc-selection");
    if (bar) {
      var said = bar.getAttribute("data-pc-announce");
      if (lastSelection !== null && said !== lastSelection) announce(said);
      lastSelection = said;
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-pc-progress]"), function (box) {
      var id = box.getAttribute("data-pc-progress");
      var finished = box.getAttribute("data-pc-finished") === "1";
      var percent = parseInt(box.getAttribute("data-pc-percent"), 10) || 0;
      var step = finished ? 5 : Math.floor(percent / 25);
      if (progressSteps[id] !== undefined && step <= progressSteps[id]) return;
      progressSteps[id] = step;
      var label = box.querySelector(".pc-task-progress-label");
      var badge = box.querySelector(".pc-badge");
      var text = "Task #" + id + ": ";
      if (finished) {
        var result = box.querySelector(".pc-task-result");
        text += (badge ? badge.textContent.trim() + ". " : "") + (result ? result.textContent.replace(/\s+/g, " ").trim() : "");
      } else {
        text += percent + "%" + (label ? ", " + label.textContent.replace(/\s+/g, " ").trim() : "");
      }
      announce(text);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var bar = document.getElementById("pc-selection");
    lastSelection = bar ? bar.getAttribute("data-pc-announce") : null;
    announceState();
  });
  document.addEventListener("htmx:afterSettle", announceState);

  // "/" focuses the search box, unless the operator is typing somewhere or a modal is open.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var typing = "input:not([type=checkbox]):not([type=radio]):not([type=button]):not([type=submit]), textarea, select, [contenteditable]";
    if (target.closest && target.closest(typing + ", dialog[open]")) return;
    var search = document.getElementById("pc-search");
    if (!search) return;
    event.preventDefault();
    search.focus();
    search.select();
  });

  // Focus goes back to what opened the modal (a row's Edit, "Edit selected"), or, when the list
  // was redrawn behind it, to the same control in the new list.
  var opener = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail.target;
    var dialog = document.getElementById("pc-modal");
    if (!target || target.id !== "pc-modal-body" || (dialog && dialog.open)) return;
    var elt = event.detail.elt;
    opener = { elt: elt, label: elt.getAttribute("aria-label"), href: elt.getAttribute("href") };
  });
  function sameControl() {
    if (!opener) return null;
    if (document.contains(opener.elt)) return opener.elt;
    var links = document.querySelectorAll("#pc-list a[href]");
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute("href") === opener.href && links[i].getAttribute("aria-label") === opener.label) return links[i];
    }
    return document.getElementById("pc-rows");
  }
  document.addEventListener("close", function (event) {
    if (event.target.id !== "pc-modal" || !opener) return;
    var back = sameControl();
    if (back) back.focus();
  }, true);
  document.addEventListener("htmx:afterSettle", function (event) {
    var dialog = document.getElementById("pc-modal");
    if (!opener || (dialog && dialog.open) || !event.detail.target || event.detail.target.id !== "pc-content") return;
    var active = document.activeElement;
    if (active && active !== document.body) { opener = null; return; }
    var back = sameControl();
    opener = null;
    if (back) back.focus();
  });

  // Row density and theme, applied at once. A signed-in user's form (data-pc-prefs="stored")
  // posts itself through htmx (hx-trigger="change"); otherwise a cookie each (a year).
  var CHOICES = { density: ["compact", "comfortable"], theme: ["auto", "light", "dark"] };
  function readCookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )pc_" + name + "=([^;]*)"));
    return match ? match[1] : "";
  }
  function applyPreference(name, value) {
    if (name === "theme") {
      if (value === "light" || value === "dark") document.documentElement.setAttribute("data-pc-theme", value);
      else document.documentElement.removeAttribute("data-pc-theme");
    } else {
      var list = document.getElementById("pc-list");
      if (list) {
        list.classList.remove("pc-density-compact", "pc-density-comfortable");
        list.classList.add("pc-density-" + value);
      }
    }
  }
  document.addEventListener("change", function (event) {
    var name = event.target.getAttribute && event.target.getAttribute("data-pc-pref");
    if (!name || CHOICES[name].indexOf(event.target.value) < 0) return;
    var value = event.target.value;
    if (!event.target.closest("[data-pc-prefs=stored]")) {
      document.cookie = "pc_" + name + "=" + value + "; path=/; max-age=31536000; SameSite=Lax";
    }
    applyPreference(name, value);
  });
  document.addEventListener("DOMContentLoaded", function () {
    // A host base template that does not set data-pc-theme itself still gets the chosen theme:
    // the list's own choice (as the server rendered it), else the cookie.
    var choice = document.querySelector("select[data-pc-pref=theme]");
    var theme = choice ? choice.value : readCookie("theme");
    if (!document.documentElement.hasAttribute("data-pc-theme") && CHOICES.theme.indexOf(theme) > 0) applyPreference("theme", theme);
    Array.prototype.forEach.call(document.querySelectorAll("[data-pc-prefs]"), function (box) { box.hidden = false; });
  });
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
