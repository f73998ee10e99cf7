"use strict";
// Says, as soon as a template is chosen, that it replaces the ticked categories: the server
// applies the template's categories whatever is ticked (and says so again after saving).
document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("id_apply_template");
  if (!select) {
    return;
  }
  const note = document.createElement("div");
  note.className = "metrics-template-note help";
  note.style.fontWeight = "bold";
  note.hidden = true;
  (select.closest(".flex-container") || select).insertAdjacentElement("afterend", note);
  const update = () => {
    const option = select.options[select.selectedIndex];
    note.hidden = !select.value;
    note.textContent = select.value
      ? `The ${select.value} template replaces the categories ticked above with its own ` +
        `(${option.dataset.categories}) and turns the export on.`
      : "";
  };
  select.addEventListener("change", update);
  update();
});
