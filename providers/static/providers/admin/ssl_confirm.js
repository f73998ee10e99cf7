"use strict";
// The confirmation dialog the operations guide promises when SSL verification is turned off.
// It enhances the server-side check: without JavaScript the "confirm" checkbox still works,
// and the server refuses the change until it is ticked (once per admin session).
document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("id_ssl_verify");
  const box = document.getElementById("id_confirm_disable_ssl");
  if (!select || !box) {
    return;
  }
  const row = box.closest(".form-row");
  if (row && !row.querySelector(".errorlist")) {
    row.hidden = true;
  }
  let previous = select.value;
  select.addEventListener("change", () => {
    if (select.value !== "false") {
      previous = select.value;
      box.checked = false;
      return;
    }
    if (box.dataset.sessionConfirmed === "true" || window.confirm(box.dataset.sslWarning)) {
      box.checked = true;
      previous = select.value;
    } else {
      select.value = previous;
    }
  });
});
