// Runs before the page paints: the saved theme, else the system's.
(function () {
  let theme = null;
  try { theme = localStorage.getItem("tg-theme"); } catch (e) { theme = null; }
  if (theme !== "light" && theme !== "dark") {
    theme = window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.dataset.theme = theme;
})();
