// The ticket page's keyboard shortcuts (the legend is on the page): t take, e escalate, r resolve, n note,
// j next ticket, q queue. A key typed into a field is text, never a shortcut; modifiers leave the browser's own.
"use strict";
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
  var target = event.target;
  if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
  var focus = function (id) { var el = document.getElementById(id); if (el) { el.focus(); el.scrollIntoView({ block: "center" }); return true; } return false; };
  var go = function (id) { var el = document.getElementById(id); if (el) { el.click(); return true; } return false; };
  var done = false;
  switch (event.key) {
    case "t": done = go("do-take"); break;
    case "e": done = focus("escalate-text"); break;
    case "r": done = focus("resolve-text"); break;
    case "n": done = focus("note-text"); break;
    case "j": done = go("next-ticket"); break;
    case "q": done = go("back-queue"); break;
  }
  if (done) event.preventDefault();
});
