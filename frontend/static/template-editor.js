// The template editor's text area as a small code editor: Tab indents (two spaces) instead of leaving the
// field, Escape lets the next Tab leave it, the line numbers follow the text, and a problem's "Line N"
// link puts the cursor on that line. Without this file the text area is a plain, working form field.
(function () {
  "use strict";

  function lineStart(text, index) {
    return text.lastIndexOf("\n", index - 1) + 1;
  }

  function numbers(gutter, textarea) {
    var bad = (gutter.getAttribute("data-bad-lines") || "").split(",").filter(Boolean);
    var count = textarea.value.split("\n").length;
    var parts = [];
    for (var n = 1; n <= count; n++) {
      parts.push(bad.indexOf(String(n)) >= 0 ? '<span class="bad">' + n + "</span>" : String(n));
    }
    gutter.innerHTML = parts.join("\n") + "\n";
    gutter.scrollTop = textarea.scrollTop;
  }

  function goToLine(textarea, line) {
    var lines = textarea.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    var end = start + (lines[line - 1] || "").length;
    textarea.focus({ preventScroll: true });
    textarea.setSelectionRange(start, end);
    // Bring the chosen line into view: the browser does not for a selection set by script. The text
    // area grows with its text, so it is the page that scrolls.
    var height = textarea.scrollHeight / Math.max(lines.length, 1);
    var top = textarea.getBoundingClientRect().top + window.scrollY;
    window.scrollTo({ top: Math.max(0, top + (line - 4) * height) });
  }

  function indent(textarea, outdent) {
    var text = textarea.value;
    var from = textarea.selectionStart;
    var to = textarea.selectionEnd;
    if (from === to && !outdent) {
      textarea.setRangeText("  ", from, to, "end");
      return;
    }
    var start = lineStart(text, from);
    var block = text.slice(start, to);
    var changed = outdent
      ? block.replace(/(^|\n) {1,2}/g, "$1")
      : block.replace(/(^|\n)(?=.)/g, "$1  ");
    textarea.setRangeText(changed, start, to, "select");
  }

  function enhance(textarea) {
    var gutter = textarea.parentNode.querySelector("pre.gutter");
    var leave = false;
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        leave = true;
        return;
      }
      if (event.key === "Tab" && !leave && !event.ctrlKey && !event.altKey && !event.metaKey) {
        event.preventDefault();
        indent(textarea, event.shiftKey);
        textarea.dispatchEvent(new Event("input"));
        return;
      }
      if (event.key === "Enter" && !event.shiftKey) {
        // Keep the indentation of the line the cursor is on.
        var text = textarea.value;
        var start = lineStart(text, textarea.selectionStart);
        var spaces = /^ */.exec(text.slice(start))[0];
        event.preventDefault();
        textarea.setRangeText("\n" + spaces, textarea.selectionStart, textarea.selectionEnd, "end");
        textarea.dispatchEvent(new Event("input"));
        return;
      }
      leave = false;
    });
    if (gutter) {
      textarea.addEventListener("input", function () { numbers(gutter, textarea); });
      textarea.addEventListener("scroll", function () { gutter.scrollTop = textarea.scrollTop; });
      numbers(gutter, textarea);
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("[data-goto-line]") : null;
    var textarea = document.querySelector("textarea[data-code-editor]");
    if (!link || !textarea) return;
    event.preventDefault();
    goToLine(textarea, parseInt(link.getAttribute("data-goto-line"), 10));
  });

  // After a Check, htmx swaps the problem list in: mark the lines it names in the gutter.
  document.addEventListener("htmx:afterSwap", function () {
    var textarea = document.querySelector("textarea[data-code-editor]");
    var gutter = textarea && textarea.parentNode.querySelector("pre.gutter");
    if (!gutter) return;
    var lines = [];
    document.querySelectorAll("#problems [data-problem-line]").forEach(function (item) {
      var line = item.getAttribute("data-problem-line");
      if (line) lines.push(line);
    });
    gutter.setAttribute("data-bad-lines", lines.join(","));
    numbers(gutter, textarea);
  });

  function start() {
    document.querySelectorAll("textarea[data-code-editor]").forEach(enhance);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
