/* Keyboard shortcuts for the approval queue. Everything here is also a link, button or form on
   the page: without JavaScript the queue works with the mouse (and does not poll).

   j / k      move the selection          Enter / o  open the selected call
   c          claim it                    a          approve it as shown (only where offered)
   r          open its reject reason box  x          select it for a bulk decision
   ?          show the shortcuts          Esc        close the reason box / the shortcuts

   The queue's partial is replaced every 2 s (htmx polling), so the selection and the ticked
   boxes are kept here, by approval id, and put back after each swap; a poll is skipped while a
   reason box is open or a field in the queue has focus, so typing is never thrown away. */
(function () {
  "use strict";

  var STORE = "handoff.desk.selected";
  var picked = new Set();
  var selected = null;

  function queue() { return document.getElementById("approval-queue"); }
  function rows() { var q = queue(); return q ? Array.prototype.slice.call(q.querySelectorAll("tr[data-approval]")) : []; }
  function rowOf(id) { return id ? document.getElementById("approval-row-" + id) : null; }

  function select(row, scroll) {
    rows().forEach(function (r) { r.classList.remove("is-selected"); r.removeAttribute("aria-selected"); });
    if (!row) { selected = null; return; }
    row.classList.add("is-selected");
    row.setAttribute("aria-selected", "true");
    selected = row.dataset.approval;
    try { sessionStorage.setItem(STORE, JSON.stringify({ id: selected, index: rows().indexOf(row) })); } catch (e) { /* private mode */ }
    if (scroll) row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var index = all.indexOf(rowOf(selected));
    index = index < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(Math.max(index + step, 0), all.length - 1);
    select(all[index], true);
  }

  function restore() {
    // After a swap or a page load: the same call if it is still listed, else the one now at
    // its place (the call after a decided one), else none.
    var all = rows();
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (e) { saved = null; }
    var fromHash = location.hash.match(/^#approval-row-(\d+)$/);
    var id = selected || (fromHash && fromHash[1]) || (saved && saved.id);
    var row = rowOf(id);
    if (!row && saved && all.length && (selected || saved.id)) row = all[Math.min(saved.index, all.length - 1)];
    if (row) select(row, false);
    all.forEach(function (r) {
      var box = r.querySelector('input[type="checkbox"][name="ids"]');
      if (box) box.checked = picked.has(r.dataset.approval);
    });
  }

  function busy() {
    var q = queue();
    if (!q) return false;
    if (q.querySelector("details[open]")) return true;
    var active = document.activeElement;
    return !!(active && q.contains(active) && active.matches("textarea, input:not([type=checkbox]), select"));
  }

  function submit(row, key) {
    var form = row && row.querySelector('form[data-key="' + key + '"]');
    if (!form) return false;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
    return true;
  }

  function openReject(row) {
    var box = row && row.querySelector('details[data-key="reject"]');
    if (!box) return;
    box.open = true;
    var reason = box.querySelector("textarea");
    if (reason) reason.focus();
  }

  function toggleShortcuts(open) {
    var help = document.getElementById("desk-shortcuts");
    if (help) help.open = open === undefined ? !help.open : open;
  }

  document.addEventListener("keydown", function (event) {
    if (!queue() || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest && target.closest("textarea, input:not([type=checkbox]), select, [contenteditable]")) {
      if (event.key === "Escape") {
        var box = target.closest("details");
        if (box) { box.open = false; target.blur(); }
      } else if (event.key === "Enter" && !event.shiftKey && target.matches("textarea[name=reason]") && target.value.trim()) {
        // Enter sends the reason (Shift+Enter for a new line).
        event.preventDefault();
        var form = target.form;
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
      }
      return;
    }
    var row = rowOf(selected);
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter":
      case "o":
        // Enter on a focused link or button does what it always does.
        if (event.key === "Enter" && target.closest("a, button, summary")) return;
        if (!row) return;
        var link = row.querySelector('a[data-key="open"]');
        if (link) location.assign(link.href);
        break;
      case "c": if (!submit(row, "claim")) return; break;
      case "a": if (!submit(row, "approve")) return; break;
      case "r": if (!row) return; openReject(row); break;
      case "x":
        if (!row) return;
        var tick = row.querySelector('input[type="checkbox"][name="ids"]');
        if (!tick) return;
        tick.checked = !tick.checked;
        tick.dispatchEvent(new Event("change", { bubbles: true }));
        break;
      case "?": toggleShortcuts(); break;
      case "Escape":
        toggleShortcuts(false);
        document.querySelectorAll("#approval-queue details[open]").forEach(function (d) { d.open = false; });
        break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.matches && box.matches('#approval-queue input[type="checkbox"][name="ids"]')) {
      if (box.checked) picked.add(box.value); else picked.delete(box.value);
    }
  });

  document.addEventListener("click", function (event) {
    // A click on a row selects it, so the keys act on what the mouse pointed at.
    var row = event.target.closest && event.target.closest("#approval-queue tr[data-approval]");
    if (row) select(row, false);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target === queue() && busy()) event.preventDefault();
  });
  // After an outerHTML swap the event fires on the new content, not on the old element.
  document.addEventListener("htmx:afterSettle", restore);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", restore);
  else restore();
})();
