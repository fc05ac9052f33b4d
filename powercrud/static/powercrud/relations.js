/* powercrud: relations that scale. Every <input data-pc-relation="URL"> (a foreign key or
   many-to-many over a big table, see formfields.RelationSearchInput) becomes a Tom Select
   control that searches the view's relation endpoint as you type, a page at a time. The
   original input keeps the chosen ids (comma-separated) and is what the form posts. */
(function () {
  "use strict";

  function pageUrl(base, query) {
    var url = new URL(base, window.location.href);
    url.searchParams.set("q", query.slice(0, 100));
    url.searchParams.set("page", "1");
    return url.toString();
  }

  function nextPage(url) {
    var next = new URL(url);
    next.searchParams.set("page", String(parseInt(next.searchParams.get("page") || "1", 10) + 1));
    return next.toString();
  }

  function enhance(input) {
    if (input.tomselect || !window.TomSelect) return;
    var selected = [];
    try { selected = JSON.parse(input.getAttribute("data-pc-selected") || "[]"); } catch (e) { selected = []; }
    var multiple = input.hasAttribute("data-pc-multiple");
    var base = input.getAttribute("data-pc-relation");
    input.setAttribute("placeholder", input.getAttribute("data-pc-placeholder") || "Search…");
    input.removeAttribute("inputmode");
    var plugins = ["virtual_scroll"];
    if (multiple) plugins.push("remove_button");
    else if (!input.required) plugins.push("clear_button");
    var control = new window.TomSelect(input, {
      plugins: plugins,
      valueField: "id",
      labelField: "text",
      searchField: [],
      options: selected,
      items: selected.map(function (o) { return o.id; }),
      maxItems: multiple ? null : 1,
      maxOptions: null,
      delimiter: ",",
      create: false,
      persist: false,
      preload: "focus",
      loadThrottle: 250,
      closeAfterSelect: !multiple,
      hideSelected: multiple,
      // The server already matched; every option it sent belongs in the list, in its order.
      score: function () { return function () { return 1; }; },
      shouldLoad: function () { return true; },
      firstUrl: function (query) { return pageUrl(base, query); },
      load: function (query, callback) {
        var self = this;
        var url = self.getUrl(query);
        fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (response) { return response.ok ? response.json() : { results: [], more: false }; })
          .then(function (data) {
            if (data.more) self.setNextUrl(query, nextPage(url));
            callback(data.results || []);
          })
          .catch(function () { callback(); });
      },
      render: {
        no_results: function () { return '<div class="no-results">No matches</div>'; },
        loading_more: function () { return '<div class="loading-more-results">Loading more…</div>'; },
        no_more_results: function () { return ""; }
      }
    });
    // Tom Select updates the input and fires "change": the filter bar and the bulk row's
    // toggle listen for that on the control's own wrapper, so nothing else is needed.
    input.closest(".pc-relation") && input.closest(".pc-relation").classList.add("pc-relation-ready");
    return control;
  }

  function enhanceAll(root) {
    if (!root || !root.querySelectorAll) return;
    Array.prototype.forEach.call(root.querySelectorAll("input[data-pc-relation]"), enhance);
  }

  document.addEventListener("DOMContentLoaded", function () { enhanceAll(document); });
  document.addEventListener("htmx:load", function (event) { enhanceAll(event.detail.elt); });
})();
