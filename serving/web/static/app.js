// The EBGAN face editor page: plain JavaScript, no libraries. The server does detection, alignment and editing;
// this file handles inputs, the mask painting, the parts of a composed edit, the edit history, zoom, and showing
// results and errors.
"use strict";

const FIELDS = ["source", "exemplar"];
const PANELS = {  // the words of each photo panel (index.html's #photo-panel template)
  source: { title: "1. Source photo", subtitle: "(the face to edit)" },
  exemplar: { title: "2. Exemplar photo", subtitle: "(where the region comes from)" },
};
const VIEW_SIZE = 256;  // CSS and canvas pixels of the mask view
const $ = (id) => document.getElementById(id);

const state = {
  models: [], model: null, regions: [], maxParts: 0,
  switchedOff: new Set(),  // attribute switches the user turned off (kept when the model changes)
  photos: { source: null, exemplar: null },  // {image, faces, face, url, width, height, gallery}
  crop: null,       // {size, image: HTMLImageElement, masks: {region: HTMLImageElement}}
  mask: null,       // canvas size x size: white = edit, black = keep
  preset: "mouth", undo: [], redo: [], busy: false, lastField: "source", requests: 0,
  history: [],      // the source's pictures: [0] the photo as added, then each kept edit; {image, url}
  step: 0,          // the picture edits start from: history[step]
  result: null,     // the latest edit, not kept yet: {image, url, from: the step it was made from}
  parts: [],        // a composed edit's parts: {region ("painted": the painted mask), face, strength, off: Set}
  library: [],      // uploaded faces the parts may come from: {value: "image:<id>:<face>", label}
  gallery: [],      // built-in faces ({index, name, url}); a part's value "gallery:<index>"
  galleryIds: {},   // built-in face index -> its image id on the server, once added
};

// ---------------------------------------------------------------------------------------------- errors and requests

class PageError extends Error {
  constructor(message, field, kind) { super(message); this.field = field; this.kind = kind; }
}

function showError(error, fallbackField) {
  const field = (error && error.field) || fallbackField || "run";
  const target = $(`${field}-error`) || $("run-error");
  target.textContent = error.message || String(error);
}

function clearError(field) { const target = $(`${field}-error`); if (target) target.textContent = ""; }

async function api(path, options, field) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (failure) {
    throw new PageError("The editor's server cannot be reached. Check that ebgan-web is still running, then try " +
                        "again.", field, "unreachable");
  }
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch (ignored) { /* not JSON */ }
    const message = body.error || `The server answered ${response.status} ${response.statusText}.`;
    throw new PageError(message, body.field || field, body.kind);
  }
  return response;
}

function postJson(path, body, field) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) },
             field);
}

async function busy(task) {
  const focused = document.activeElement;  // disabling the controls drops the focus to the page body
  state.busy = true;
  state.requests += 1;
  $("controls").disabled = true;
  $("progress").hidden = false;
  $("status").textContent = "Working…";
  document.body.setAttribute("aria-busy", "true");
  try {
    return await task();
  } finally {
    state.requests -= 1;
    if (state.requests === 0) {
      state.busy = false;
      $("controls").disabled = false;
      $("progress").hidden = true;
      if ($("status").textContent === "Working…") $("status").textContent = "";  // the task set no outcome
      if ((document.activeElement === document.body || !document.activeElement) && focused && focused.isConnected) {
        focused.focus();
      }
      document.body.removeAttribute("aria-busy");
    }
  }
}

// ---------------------------------------------------------------------------------------------- model

function currentModel() { return state.models.find((model) => model.name === state.model); }

function showModel() {
  const model = currentModel();
  $("model-info").textContent = `${model.name}, version ${model.version ?? "?"} · ${model.variant} · ` +
    `${model.image_size}×${model.image_size} px · ` +
    (model.attributes.length ? `attributes: ${model.attributes.join(", ")}` : "no attributes");
  const list = $("attributes");
  list.replaceChildren();
  $("attributes-note").textContent = !model.filtering
    ? `This is an ${model.variant} model: it transfers the region as it is and cannot filter out attributes.`
    : "Switch an attribute off to filter it out of the exemplar's region. " + (model.classifies
      ? "Beside each switch: whether the model's classifier reads it on the exemplar (only what it reads there " +
        "is transferred)."
      : "This export has no classifier signature, so the exemplar's attributes are not shown.");
  for (const name of model.attributes) {
    const item = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.checked = true; box.id = `attribute-${name}`; box.dataset.attribute = name;
    box.disabled = !model.filtering;
    label.append(box, ` ${name.replaceAll("_", " ")}`);
    const reading = document.createElement("span");
    reading.className = "reading"; reading.id = `reading-${name}`;
    item.append(label, reading);
    list.append(item);
  }
}

// The probability to two decimals, never contradicting the word: the gate transfers above 0.5, so a reading that
// rounds to 0.50 shows as "> 0.50" when present and "≤ 0.50" when not.
function shownProbability(entry) {
  const shown = entry.probability.toFixed(2);
  return shown === "0.50" ? `${entry.present ? ">" : "≤"} 0.50` : shown;
}

function showReading(reading) {
  for (const span of document.querySelectorAll("#attributes .reading")) span.textContent = "";
  for (const entry of reading || []) {
    const span = $(`reading-${entry.attribute}`);
    if (span) span.textContent = `exemplar: ${entry.present ? "yes" : "no"} ${shownProbability(entry)}`;
  }
}

// The classifier's reading of the chosen exemplar face, shown beside the attribute switches (Att-EBGAN exports
// with a classify signature; nothing otherwise).
async function loadReading() {
  const photo = state.photos.exemplar;
  const model = currentModel();
  showReading(null);
  if (!photo || !model || !model.classifies) return;
  const body = await (await postJson("/api/crop", { model: model.name, image: photo.image, face: photo.face,
                                                    field: "exemplar" }, "exemplar")).json();
  if (state.model === model.name && state.photos.exemplar === photo) showReading(body.reading);
}

async function loadModels() {
  try {
    const body = await (await api("/api/models", {}, "model")).json();
    state.models = body.models; state.regions = body.regions; state.model = body.default;
    state.maxParts = body.max_parts;
    const select = $("model-select");
    select.replaceChildren(...body.models.map((model) => new Option(`${model.name} (v${model.version ?? "?"})`,
                                                                     model.name)));
    select.value = state.model;
    select.disabled = body.models.length < 2;
    showModel();
    buildPresets();
    renderParts();
  } catch (error) { showError(error, "model"); }
}

// ---------------------------------------------------------------------------------------------- photos and faces

function showPhoto(field) {
  const photo = state.photos[field];
  const zone = $(`${field}-drop`);
  zone.querySelector(".hint").hidden = true;
  $(`${field}-view`).hidden = false;
  $(`${field}-zoom-label`).hidden = false;
  $(`${field}-image`).src = field === "source" ? state.history[state.step].url : photo.url;
  const boxes = $(`${field}-boxes`);
  boxes.replaceChildren();
  photo.faces.forEach((face, index) => {
    const [x, y, width, height] = face.box;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "face-box" + (index === photo.face ? " chosen" : "");
    button.setAttribute("aria-label", `Use face ${index + 1} of ${photo.faces.length} in the ${field}`);
    button.setAttribute("aria-pressed", String(index === photo.face));
    Object.assign(button.style, { left: `${100 * x / photo.width}%`, top: `${100 * y / photo.height}%`,
                                  width: `${100 * width / photo.width}%`, height: `${100 * height / photo.height}%` });
    button.addEventListener("click", () => pickFace(field, index));
    boxes.append(button);
  });
  $(`${field}-faces`).textContent = photo.faces.length > 1
    ? `${photo.faces.length} faces found: face ${photo.face + 1} is used (click another outline to pick it).`
    : `${photo.name}: one face found.`;
  zoomPhoto(field);
}

// A photo added to a panel (`gallery`: the built-in face's index, else null). A new source starts a new history;
// every uploaded face can be a part's face.
async function usePhoto(field, registered, url, label, gallery = null) {
  state.photos[field] = { ...registered, face: 0, url, gallery };
  if (gallery === null) {
    const count = registered.faces.length;
    state.library.push(...registered.faces.map((face, index) => ({
      value: `image:${registered.image}:${index}`, label: count > 1 ? `${label}, face ${index + 1}` : label })));
  } else {
    state.galleryIds[gallery] = registered.image;
  }
  if (field === "source") {
    dropResult();
    for (const picture of state.history.slice(1)) URL.revokeObjectURL(picture.url);
    state.history = [{ image: registered.image, url }];
    state.step = 0;
    showPictures();
  }
  showPhoto(field);
  renderParts();
  await (field === "source" ? loadCrop() : loadReading());
}

function pickFace(field, index) {
  if (state.busy) return;
  state.photos[field].face = index;
  showPhoto(field);
  busy(field === "source" ? loadCrop : loadReading).catch((error) => showError(error, field));
}

function addFile(field, file) {
  if (!file || state.busy) return;
  clearError(field);
  busy(async () => {
    const response = await api(`/api/images?field=${field}`,
                               { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } },
                               field);
    await usePhoto(field, await response.json(), URL.createObjectURL(file), file.name || "pasted photo");
  }).catch((error) => showError(error, field));
}

function addGalleryFace(field, face) {
  if (state.busy) return;
  clearError(field);
  busy(async () => {
    const response = await api(`/api/gallery/${face.index}`, { method: "POST", body: "" }, field);
    await usePhoto(field, await response.json(), face.url, face.name, face.index);
  }).catch((error) => showError(error, field));
}

async function loadGallery() {
  try {
    const body = await (await api("/api/gallery", {}, "source")).json();
    state.gallery = body.faces;
    renderParts();
    for (const field of FIELDS) {
      $(`${field}-gallery`).replaceChildren(...body.faces.map((face) => {
        const button = document.createElement("button");
        button.type = "button";
        button.id = `${field}-gallery-${face.index}`;
        button.setAttribute("aria-label", `Use ${face.name.toLowerCase()} as the ${field}`);
        const image = document.createElement("img");
        image.src = face.url; image.alt = "";
        button.append(image);
        button.addEventListener("click", () => addGalleryFace(field, face));
        return button;
      }));
    }
  } catch (error) { showError(error, "source"); }
}

// One panel per field, cloned from the template; element ids are `${field}-${data-id}` (source-file, ...).
function buildPhotoPanels() {
  for (const field of FIELDS) {
    const panel = $("photo-panel").content.firstElementChild.cloneNode(true);
    const part = (name) => panel.querySelector(`[data-part="${name}"]`);
    const Field = field[0].toUpperCase() + field.slice(1);
    panel.dataset.field = field;
    for (const element of panel.querySelectorAll("[data-id]")) element.id = `${field}-${element.dataset.id}`;
    panel.setAttribute("aria-labelledby", `${field}-title`);
    part("title").textContent = PANELS[field].title;
    part("subtitle").textContent = PANELS[field].subtitle;
    part("file-label").textContent = `Choose the ${field} photo`;
    part("file-label").htmlFor = `${field}-file`;
    panel.querySelector(".drop-zone").setAttribute("aria-label", `${Field} photo: drop or paste an image here`);
    panel.querySelector(".stage img").alt = `${Field} photo`;
    panel.querySelector(".viewport").setAttribute("aria-label", `${Field} photo (arrow keys scroll when zoomed)`);
    panel.querySelector(".zoom select").setAttribute("aria-label", `Zoom on the ${field} photo`);
    panel.querySelector(".gallery").setAttribute("aria-label", `Built-in faces for the ${field}`);
    $("photos").append(panel);
  }
}

function setUpInputs() {
  for (const field of FIELDS) {
    const input = $(`${field}-file`);
    input.addEventListener("change", () => { addFile(field, input.files[0]); input.value = ""; });
    const zone = $(`${field}-drop`);
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault(); zone.classList.remove("dragging");
      addFile(field, event.dataTransfer.files[0]);
    });
    $(`${field}-zoom`).addEventListener("change", () => zoomPhoto(field));
    $(`${field}-image`).addEventListener("load", () => zoomPhoto(field));
    zone.closest(".photo").addEventListener("focusin", () => { state.lastField = field; });
    zone.closest(".photo").addEventListener("pointerdown", () => { state.lastField = field; });
  }
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((entry) => entry.kind === "file");
    if (!item) return;
    event.preventDefault();
    const inside = document.activeElement && document.activeElement.closest(".photo");
    const field = inside ? inside.dataset.field : (state.photos.source ? state.lastField : "source");
    addFile(field, item.getAsFile());
  });
}

// ---------------------------------------------------------------------------------------------- region and mask

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new PageError("An image from the server could not be shown.", "mask"));
    image.src = url;
  });
}

// The aligned face of the picture edits start from, with its region masks. `keepMask`: the same face after an
// edit (same landmarks), so the painted mask and its undo steps stay.
async function loadCrop(keepMask = false) {
  const photo = state.photos.source;
  if (!photo) return;
  clearError("mask");
  const body = await (await postJson("/api/crop", { model: state.model, image: state.history[state.step].image,
                                                    face: photo.face, field: "source" }, "source")).json();
  const masks = {};
  for (const [name, url] of Object.entries(body.masks)) masks[name] = await loadImage(url);
  state.crop = { size: body.size, image: await loadImage(body.crop), masks };
  if (keepMask && state.mask && state.mask.width === body.size) {
    drawMaskView();
    return;
  }
  state.mask = document.createElement("canvas");
  state.mask.width = state.mask.height = body.size;
  state.mask.getContext("2d", { willReadFrequently: true });  // painting, undo and the overlay read it back
  state.undo = [];
  state.redo = [];
  $("brush-size").max = String(Math.max(2, Math.round(body.size / 4)));
  applyPreset(state.preset, false);
}

function buildPresets() {
  $("presets").replaceChildren(...state.regions.map((name) => {
    const button = document.createElement("button");
    button.type = "button"; button.id = `preset-${name}`; button.textContent = name;
    button.setAttribute("aria-pressed", String(name === state.preset));
    button.addEventListener("click", () => applyPreset(name, true));
    return button;
  }));
}

function maskPixels() { return state.mask.getContext("2d").getImageData(0, 0, state.mask.width, state.mask.height); }

function saveUndo() {
  state.undo.push(maskPixels());
  if (state.undo.length > 50) state.undo.shift();
  state.redo = [];
}

function applyPreset(name, remember) {
  state.preset = name;
  for (const button of $("presets").children) button.setAttribute("aria-pressed", String(button.id === `preset-${name}`));
  if (!state.crop) return;
  if (remember) saveUndo();
  const context = state.mask.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(state.crop.masks[name], 0, 0);
  drawMaskView();
}

// Undo (from state.undo to state.redo) or redo (the other way) one change of the mask.
function restoreMask(from, to) {
  if (!from.length || state.busy) return;
  to.push(maskPixels());
  state.mask.getContext("2d").putImageData(from.pop(), 0, 0);
  drawMaskView();
}

function undo() { restoreMask(state.undo, state.redo); }

function redo() { restoreMask(state.redo, state.undo); }

// Clear (every pixel off) or invert the mask, as one undoable change: `on(was)` is a pixel's new state.
function changeMask(on) {
  if (!state.crop || state.busy) return;
  saveUndo();
  const pixels = maskPixels();
  for (let index = 0; index < pixels.data.length; index += 4) {
    pixels.data.fill(on(pixels.data[index] > 127) ? 255 : 0, index, index + 3);
    pixels.data[index + 3] = 255;
  }
  state.mask.getContext("2d").putImageData(pixels, 0, 0);
  drawMaskView();
}

function drawMaskView() {
  const view = $("mask-view").getContext("2d");
  view.imageSmoothingEnabled = false;
  view.clearRect(0, 0, VIEW_SIZE, VIEW_SIZE);
  if (!state.crop) return;
  view.drawImage(state.crop.image, 0, 0, VIEW_SIZE, VIEW_SIZE);
  const size = state.mask.width;
  const pixels = state.mask.getContext("2d").getImageData(0, 0, size, size);
  const overlay = new ImageData(size, size);
  for (let index = 0; index < pixels.data.length; index += 4) {
    if (pixels.data[index] > 127) { overlay.data[index] = 255; overlay.data[index + 3] = 120; }
  }
  const layer = document.createElement("canvas");
  layer.width = layer.height = size;
  layer.getContext("2d").putImageData(overlay, 0, 0);
  view.drawImage(layer, 0, 0, VIEW_SIZE, VIEW_SIZE);
}

function setUpPainting() {
  const view = $("mask-view");
  let last = null;
  const at = (event) => {
    const rect = view.getBoundingClientRect();
    const size = state.mask.width;
    return [(event.clientX - rect.left) * size / rect.width, (event.clientY - rect.top) * size / rect.height];
  };
  const paint = (point) => {
    const context = state.mask.getContext("2d");
    const eraser = $("tool-eraser").checked;
    context.strokeStyle = context.fillStyle = eraser ? "#000" : "#fff";
    context.lineWidth = Number($("brush-size").value);
    context.lineCap = "round";
    context.beginPath();
    if (last) { context.moveTo(...last); context.lineTo(...point); context.stroke(); }
    context.beginPath();
    context.arc(point[0], point[1], context.lineWidth / 2, 0, 2 * Math.PI);
    context.fill();
    last = point;
    drawMaskView();
  };
  view.addEventListener("pointerdown", (event) => {
    if (!state.crop || state.busy) return;
    view.setPointerCapture(event.pointerId);
    saveUndo(); last = null; paint(at(event));
  });
  view.addEventListener("pointermove", (event) => { if (last && event.buttons) paint(at(event)); });
  const stop = () => { last = null; };
  view.addEventListener("pointerup", stop);
  view.addEventListener("pointercancel", stop);
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear-mask").addEventListener("click", () => changeMask(() => false));
  $("invert-mask").addEventListener("click", () => changeMask((was) => !was));
  $("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey)) return;
    if (event.key === "z") { event.preventDefault(); undo(); }
    if (event.key === "y" || event.key === "Z") { event.preventDefault(); redo(); }
  });
}

// ---------------------------------------------------------------------------------------------- parts

// What a part's face may be: the uploaded photos' faces, then the built-in faces.
function faceOptions() {
  return [...state.library, ...state.gallery.map((face) => ({ value: `gallery:${face.index}`, label: face.name }))];
}

function exemplarValue() {
  const photo = state.photos.exemplar;
  if (!photo) return null;
  return photo.gallery === null ? `image:${photo.image}:${photo.face}` : `gallery:${photo.gallery}`;
}

function addPart() {
  if (state.busy || state.parts.length >= state.maxParts) return;
  const used = new Set(state.parts.map((part) => part.region));
  state.parts.push({ region: state.regions.find((name) => !used.has(name)) || state.regions[0],
                     face: exemplarValue() || faceOptions()[0].value, strength: 1, off: new Set() });
  renderParts();
  $(`part-${state.parts.length}-region`).focus();
}

function removePart(index) {
  if (state.busy) return;
  state.parts.splice(index, 1);
  renderParts();
  $("add-part").focus();
}

// One row of the parts panel, cloned from the #part-row template; element ids are `part-${number}-${data-id}`.
function partRow(part, number, model, options) {
  const row = $("part-row").content.firstElementChild.cloneNode(true);
  const element = (id) => row.querySelector(`[data-id="${id}"]`);
  for (const child of row.querySelectorAll("[data-id]")) child.id = `part-${number}-${child.dataset.id}`;
  row.querySelector("legend").textContent = `Part ${number}`;
  const region = element("region");
  region.append(...state.regions.map((name) => new Option(name, name)), new Option("painted mask (3.)", "painted"));
  region.value = part.region;
  region.addEventListener("change", () => { part.region = region.value; });
  const face = element("face");
  face.append(...options.map((option) => new Option(option.label, option.value)));
  face.value = part.face;
  part.face = face.value;  // the first face when the chosen one is gone
  face.addEventListener("change", () => { part.face = face.value; });
  const strength = element("strength");
  const shown = () => { element("strength-value").textContent = part.strength.toFixed(2); };
  strength.value = String(part.strength);
  strength.setAttribute("aria-label", `Strength of part ${number}: 0 = the source's own region, 1 = the face's`);
  strength.addEventListener("input", () => { part.strength = Number(strength.value); shown(); });
  shown();
  element("attributes").setAttribute("aria-label", `Attributes part ${number} transfers`);
  element("attributes").append(...model.attributes.map((name) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.id = `part-${number}-attribute-${name}`; box.dataset.attribute = name;
    box.checked = !part.off.has(name); box.disabled = !model.filtering;
    box.addEventListener("change", () => { if (box.checked) part.off.delete(name); else part.off.add(name); });
    label.append(box, ` ${name.replaceAll("_", " ")}`);
    return label;
  }));
  element("remove").setAttribute("aria-label", `Remove part ${number}`);
  element("remove").addEventListener("click", () => removePart(number - 1));
  return row;
}

function renderParts() {
  const model = currentModel();
  if (!model) return;
  const options = faceOptions();
  $("parts").replaceChildren(...state.parts.map((part, index) => partRow(part, index + 1, model, options)));
  $("add-part").disabled = !model.composes || !options.length || state.parts.length >= state.maxParts;
  $("parts-note").textContent = !model.composes
    ? `This export of ${model.name} has no edit_composed signature (an older ebgan-export wrote it): export the ` +
      "model again to compose parts."
    : "Optional: fill several regions in one edit, each from its own face (an uploaded photo or a built-in face) " +
      `at its own strength (up to ${state.maxParts} parts). With parts, "Edit the source" composes them, and the ` +
      "exemplar, region and switches above are not used.";
}

// A part's face as the server knows it (a built-in face is added on first use).
async function partFace(value) {
  const [kind, key, face] = value.split(":");
  if (kind === "image") return { image: key, face: Number(face) };
  if (!state.galleryIds[key]) {
    state.galleryIds[key] = (await (await api(`/api/gallery/${key}`, { method: "POST", body: "" }, "parts"))
      .json()).image;
  }
  return { image: state.galleryIds[key], face: 0 };
}

async function composeRequest() {
  const model = currentModel();
  const parts = [];
  for (const part of state.parts) {
    parts.push({ ...(part.region === "painted" ? { mask: state.mask.toDataURL("image/png") } : { region: part.region }),
                 exemplar: await partFace(part.face), strength: part.strength,
                 drop: model.filtering ? model.attributes.filter((name) => part.off.has(name)) : [] });
  }
  return { model: state.model, source: sourceFace(), parts };
}

// ---------------------------------------------------------------------------------------------- zoom

// Shows the image of `viewport` at `zoom` times its fitted size: the viewport keeps the fitted size and scrolls (the
// arrow keys scroll it once it has the focus), centred on `centre` (fractions of the image's width and height).
function zoomView(viewport, zoom, centre) {
  const stage = viewport.firstElementChild;
  viewport.classList.remove("zoomed");
  viewport.style.width = viewport.style.height = stage.style.width = "";
  viewport.tabIndex = -1;
  const { width, height } = stage.querySelector("img").getBoundingClientRect();
  if (zoom <= 1 || !width) return;
  Object.assign(viewport.style, { width: `${width}px`, height: `${height}px` });
  viewport.classList.add("zoomed");
  viewport.tabIndex = 0;
  stage.style.width = `${width * zoom}px`;
  viewport.scrollLeft = centre[0] * width * zoom - width / 2;
  viewport.scrollTop = centre[1] * height * zoom - height / 2;
}

function faceCentre(photo) {
  const [x, y, width, height] = photo.faces[photo.face].box;
  return [(x + width / 2) / photo.width, (y + height / 2) / photo.height];
}

function zoomPhoto(field) {
  const photo = state.photos[field];
  if (photo) zoomView($(`${field}-view`), Number($(`${field}-zoom`).value), faceCentre(photo));
}

function zoomResult() {
  const photo = state.photos.source;
  for (const id of ["result-source-view", "result-view"]) {
    zoomView($(id), Number($("result-zoom").value), photo ? faceCentre(photo) : [0.5, 0.5]);
  }
}

// ---------------------------------------------------------------------------------------------- edit and history

function maskHasPixels() {
  const size = state.mask.width;
  const data = state.mask.getContext("2d").getImageData(0, 0, size, size).data;
  for (let index = 0; index < data.length; index += 4) if (data[index] > 127) return true;
  return false;
}

function sourceFace() { return { image: state.history[state.step].image, face: state.photos.source.face }; }

async function runEdit() {
  for (const field of [...FIELDS, "mask", "attributes", "run", "model", "parts"]) clearError(field);
  for (const error of document.querySelectorAll("#parts .error")) error.textContent = "";
  const composing = state.parts.length > 0;
  const missing = (composing ? ["source"] : FIELDS).filter((field) => !state.photos[field]);
  if (missing.length) {
    for (const field of missing) showError(new PageError(`Add a ${field} photo first.`, field));
    return;
  }
  if (!composing && (!state.crop || !maskHasPixels())) {
    showError(new PageError("The region is empty: pick a region or paint where to edit.", "mask"));
    return;
  }
  const drop = [...document.querySelectorAll("#attributes input")].filter((box) => !box.checked)
    .map((box) => box.dataset.attribute);
  const face = (field) => ({ image: state.photos[field].image, face: state.photos[field].face });
  const started = performance.now();
  const response = composing
    ? await postJson("/api/compose", await composeRequest(), "parts")
    : await postJson("/api/edit", { model: state.model, source: sourceFace(), exemplar: face("exemplar"),
                                    mask: state.mask.toDataURL("image/png"), drop }, "run");
  const url = URL.createObjectURL(await response.blob());
  dropResult();
  state.result = { image: response.headers.get("X-Image"), url, from: state.step };
  showPictures();
  $("status").textContent = `Done in ${Math.round(performance.now() - started)} ms` +
    (composing ? ` (${state.parts.length} part${state.parts.length > 1 ? "s" : ""} composed).`
               : drop.length ? ` (filtered out: ${drop.join(", ")}).` : ".");
  $("result-title").focus();  // and into view: the result is below the fold on most screens
}

function dropResult() {
  if (state.result) URL.revokeObjectURL(state.result.url);
  state.result = null;
}

// The source panel shows the picture edits start from; the result panel the latest edit beside the picture it was
// made from: the edit not kept yet, else the last kept one (none: the panel is hidden).
function showPictures() {
  const shown = state.result || (state.step > 0 ? { ...state.history[state.step], from: state.step - 1 } : null);
  if (state.photos.source) $("source-image").src = state.history[state.step].url;
  $("result-panel").hidden = !shown;
  $("download").href = shown ? shown.url : "#";
  if (shown) {
    $("result-source").src = state.history[shown.from].url;
    $("result-image").src = shown.url;
  }
  $("keep").disabled = !state.result;
  $("history-undo").disabled = state.step === 0;
  $("history-redo").disabled = state.step >= state.history.length - 1;
  $("history-status").textContent = state.history.length > 1
    ? `Kept edits: ${state.step} of ${state.history.length - 1}.` : "";
}

// Makes the edit shown the picture the next edits start from (kept edits after the current one are dropped).
function keepResult() {
  if (!state.result || state.busy) return;
  for (const picture of state.history.splice(state.step + 1)) URL.revokeObjectURL(picture.url);
  state.history.push({ image: state.result.image, url: state.result.url });
  state.result = null;
  goToStep(state.history.length - 1);
  $("status").textContent = "Kept: the next edit starts from this picture.";
  $("result-title").focus();
}

// Undo or redo kept edits: the picture edits start from becomes history[step] (an edit not kept is dropped).
function goToStep(step) {
  if (state.busy || step < 0 || step >= state.history.length) return;
  const pressed = document.activeElement;
  dropResult();
  state.step = step;
  showPictures();
  $("status").textContent = "";
  if (["history-undo", "history-redo"].includes(pressed.id) && pressed.disabled) {  // the last undo or redo
    (step === 0 ? $("history-redo") : $("history-undo")).focus();
  }
  busy(() => loadCrop(true)).catch((error) => showError(error, "source"));
}

// A result of another model (or of inputs since changed) is not left on screen.
function clearResult() {
  dropResult();
  showPictures();
  $("status").textContent = "";
}

function setUpResult() {
  $("run").addEventListener("click", () => { if (!state.busy) busy(runEdit).catch((error) => showError(error, "run")); });
  $("add-part").addEventListener("click", addPart);
  $("keep").addEventListener("click", keepResult);
  $("history-undo").addEventListener("click", () => goToStep(state.step - 1));
  $("history-redo").addEventListener("click", () => goToStep(state.step + 1));
  $("result-zoom").addEventListener("change", zoomResult);
  $("result-source").addEventListener("load", zoomResult);
  const views = [$("result-source-view"), $("result-view")];
  for (const view of views) {  // both show the same place of the photo
    view.addEventListener("scroll", () => {
      for (const other of views) Object.assign(other, { scrollLeft: view.scrollLeft, scrollTop: view.scrollTop });
    });
  }
  const showBefore = (on) => {
    if ($("result-panel").hidden) return;
    $("result-image").src = on ? $("result-source").src : $("download").href;
    $("result-caption").textContent = on ? "Before (source)" : "Edited: hold B (or the button) to see the source";
  };
  const before = $("before");
  before.addEventListener("pointerdown", () => showBefore(true));
  for (const name of ["pointerup", "pointerleave", "blur"]) before.addEventListener(name, () => showBefore(false));
  before.addEventListener("keydown", (event) => { if (event.key === " " || event.key === "Enter") showBefore(true); });
  before.addEventListener("keyup", () => showBefore(false));
  const typing = (event) => ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
  document.addEventListener("keydown", (event) => { if (event.key === "b" && !typing(event)) showBefore(true); });
  document.addEventListener("keyup", (event) => { if (event.key === "b") showBefore(false); });
  $("model-select").addEventListener("change", () => {
    if (currentModel().filtering) {  // the user's switches, kept across a model that has none
      state.switchedOff = new Set([...document.querySelectorAll("#attributes input")].filter((box) => !box.checked)
        .map((box) => box.dataset.attribute));
    }
    state.model = $("model-select").value;
    clearError("model");
    clearResult();
    showModel();
    renderParts();
    for (const box of document.querySelectorAll("#attributes input")) {  // the user's switches, where they apply
      if (!box.disabled && state.switchedOff.has(box.dataset.attribute)) box.checked = false;
    }
    busy(loadCrop).catch((error) => showError(error, "source"));
    busy(loadReading).catch((error) => showError(error, "exemplar"));
  });
}

buildPhotoPanels();
setUpInputs();
setUpPainting();
setUpResult();
loadModels();
loadGallery();
