// The EBGAN face editor page: plain JavaScript, no libraries. The server does detection, alignment and editing;
// this file handles inputs, the mask painting and showing results and errors.
"use strict";

const FIELDS = ["source", "exemplar"];
const PANELS = {  // the words of each photo panel (index.html's #photo-panel template)
  source: { title: "1. Source photo", subtitle: "(the face to edit)" },
  exemplar: { title: "2. Exemplar photo", subtitle: "(where the region comes from)" },
};
const VIEW_SIZE = 256;  // CSS and canvas pixels of the mask view
const $ = (id) => document.getElementById(id);

const state = {
  models: [], model: null, regions: [],
  switchedOff: new Set(),  // attribute switches the user turned off (kept when the model changes)
  photos: { source: null, exemplar: null },  // {image, faces, face, url, width, height}
  crop: null,       // {size, image: HTMLImageElement, masks: {region: HTMLImageElement}}
  mask: null,       // canvas size x size: white = edit, black = keep
  preset: "mouth", undo: [], busy: false, resultUrl: null, lastField: "source", requests: 0,
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
    const select = $("model-select");
    select.replaceChildren(...body.models.map((model) => new Option(`${model.name} (v${model.version ?? "?"})`,
                                                                     model.name)));
    select.value = state.model;
    select.disabled = body.models.length < 2;
    showModel();
    buildPresets();
  } catch (error) { showError(error, "model"); }
}

// ---------------------------------------------------------------------------------------------- photos and faces

function showPhoto(field) {
  const photo = state.photos[field];
  const zone = $(`${field}-drop`);
  zone.querySelector(".hint").hidden = true;
  zone.querySelector(".stage").hidden = false;
  $(`${field}-image`).src = photo.url;
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
}

async function usePhoto(field, registered, url) {
  state.photos[field] = { ...registered, face: 0, url };
  showPhoto(field);
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
    await usePhoto(field, await response.json(), URL.createObjectURL(file));
  }).catch((error) => showError(error, field));
}

function addGalleryFace(field, face) {
  if (state.busy) return;
  clearError(field);
  busy(async () => {
    const response = await api(`/api/gallery/${face.index}`, { method: "POST", body: "" }, field);
    await usePhoto(field, await response.json(), face.url);
  }).catch((error) => showError(error, field));
}

async function loadGallery() {
  try {
    const body = await (await api("/api/gallery", {}, "source")).json();
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

async function loadCrop() {
  const photo = state.photos.source;
  if (!photo) return;
  clearError("mask");
  const body = await (await postJson("/api/crop", { model: state.model, image: photo.image, face: photo.face,
                                                    field: "source" }, "source")).json();
  const masks = {};
  for (const [name, url] of Object.entries(body.masks)) masks[name] = await loadImage(url);
  state.crop = { size: body.size, image: await loadImage(body.crop), masks };
  state.mask = document.createElement("canvas");
  state.mask.width = state.mask.height = body.size;
  state.undo = [];
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

function saveUndo() {
  const context = state.mask.getContext("2d");
  state.undo.push(context.getImageData(0, 0, state.mask.width, state.mask.height));
  if (state.undo.length > 50) state.undo.shift();
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

function undo() {
  if (!state.undo.length || state.busy) return;
  state.mask.getContext("2d").putImageData(state.undo.pop(), 0, 0);
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
  $("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
  });
}

// ---------------------------------------------------------------------------------------------- edit and result

function maskHasPixels() {
  const size = state.mask.width;
  const data = state.mask.getContext("2d").getImageData(0, 0, size, size).data;
  for (let index = 0; index < data.length; index += 4) if (data[index] > 127) return true;
  return false;
}

async function runEdit() {
  for (const field of [...FIELDS, "mask", "attributes", "run", "model"]) clearError(field);
  const missing = FIELDS.filter((field) => !state.photos[field]);
  if (missing.length) {
    for (const field of missing) showError(new PageError(`Add a ${field} photo first.`, field));
    return;
  }
  if (!state.crop || !maskHasPixels()) {
    showError(new PageError("The region is empty: pick a region or paint where to edit.", "mask"));
    return;
  }
  const drop = [...document.querySelectorAll("#attributes input")].filter((box) => !box.checked)
    .map((box) => box.dataset.attribute);
  const face = (field) => ({ image: state.photos[field].image, face: state.photos[field].face });
  const started = performance.now();
  const response = await postJson("/api/edit", { model: state.model, source: face("source"),
                                                 exemplar: face("exemplar"), mask: state.mask.toDataURL("image/png"),
                                                 drop }, "run");
  const blob = await response.blob();
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  $("result-source").src = state.photos.source.url;
  $("result-image").src = state.resultUrl;
  $("download").href = state.resultUrl;
  $("result-panel").hidden = false;
  $("status").textContent = `Done in ${Math.round(performance.now() - started)} ms` +
    (drop.length ? ` (filtered out: ${drop.join(", ")}).` : ".");
  $("result-title").focus();  // and into view: the result is below the fold on most screens
}

// A result of another model (or of inputs since changed) is not left on screen.
function clearResult() {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = null;
  $("result-panel").hidden = true;
  $("download").href = "#";
  $("status").textContent = "";
}

function setUpResult() {
  $("run").addEventListener("click", () => { if (!state.busy) busy(runEdit).catch((error) => showError(error, "run")); });
  const showBefore = (on) => {
    if (!state.resultUrl) return;
    $("result-image").src = on ? state.photos.source.url : state.resultUrl;
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
