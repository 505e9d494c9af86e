// geo_router call-taker map: plain ES module, Leaflet (global L) served by the service itself.
// Coordinates are GeoJSON order (lon, lat) everywhere except where Leaflet wants [lat, lng].

const KEY_STORAGE = "geo_router.api_key";
const ITEM_LIMIT = 1000; // the API's page size cap
const MAX_PAGES = 50; // a bound on "next" links followed per collection

const ZONE_STYLES = {
  kelurahan: { color: "#6b7780", weight: 1, fillColor: "#9aa5ad", fillOpacity: 0.05 },
  kecamatan: { color: "#243540", weight: 3, fillOpacity: 0 },
  fire_district: { color: "#c0392b", weight: 2, dashArray: "8 5", fillOpacity: 0 },
  police_sector: { color: "#1f5fbf", weight: 2, dashArray: "3 6", fillOpacity: 0 },
};
const FACILITY_COLORS = { fire_station: "#d62d20", police_post: "#1f5fbf", hospital: "#138a36" };
const PALETTE = ["#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b7950b"];
const STATUS_TEXT = {
  inside: "inside",
  near_boundary: "near a boundary",
  outside_coverage: "outside coverage",
  invalid_coordinates: "invalid coordinates",
};
const COMPASS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];

const state = {
  config: { tile_url: null, default_k: 3 },
  map: null,
  overlays: new Map(), // collection id -> { layer, kind, color }
  routeLayer: null,
  paletteNext: 0,
};

const $ = (id) => document.getElementById(id);

// ---------- HTTP ----------

function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function apiGet(path) {
  const response = await fetch(path, { headers: { Accept: "application/json", ...authHeaders() } });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch {
      // not JSON: keep the status text
    }
    const error = new Error(`${response.status} ${detail}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatDistance(metres) {
  if (metres === null || metres === undefined || Number.isNaN(metres)) return "–";
  if (metres < 1000) return `${Math.round(metres)} m`;
  return `${(metres / 1000).toFixed(metres < 10000 ? 2 : 1)} km`;
}

export function formatBearing(degrees) {
  if (degrees === null || degrees === undefined || Number.isNaN(degrees)) return "–";
  const normal = ((degrees % 360) + 360) % 360;
  return `${Math.round(normal)}° ${COMPASS[Math.round(normal / 45) % 8]}`;
}

function humanize(name) {
  return String(name).replaceAll("_", " ");
}

function colorFor(kind, id) {
  if (kind === "points" && FACILITY_COLORS[id]) return FACILITY_COLORS[id];
  if (kind === "zones" && ZONE_STYLES[id]) return ZONE_STYLES[id].color;
  const color = PALETTE[state.paletteNext % PALETTE.length];
  state.paletteNext += 1;
  return color;
}

function setStatus(text) {
  $("map-status").textContent = text;
}

// ---------- location input ----------

export function parseLonLat(lonText, latText) {
  let lonRaw = String(lonText).trim();
  let latRaw = String(latText).trim();
  // A pasted "lon, lat" pair in the first box: split it (still GeoJSON order).
  const pair = lonRaw.split(/[\s,;]+/).filter(Boolean);
  if (!latRaw && pair.length === 2) [lonRaw, latRaw] = pair;
  const lon = Number(lonRaw);
  const lat = Number(latRaw);
  if (lonRaw === "" || !Number.isFinite(lon)) return { error: "Longitude is not a number." };
  if (latRaw === "" || !Number.isFinite(lat)) return { error: "Latitude is not a number." };
  if (lon < -180 || lon > 180) return { error: `Longitude ${lon} is outside −180…180.` };
  if (lat < -90 || lat > 90) {
    return { error: `Latitude ${lat} is outside −90…90 (are longitude and latitude swapped?).` };
  }
  return { lon, lat };
}

// ---------- map ----------

function createMap() {
  const map = L.map("map", { zoomControl: true, keyboard: true, preferCanvas: false });
  map.setView([0, 0], 2);
  if (state.config.tile_url) {
    L.tileLayer(state.config.tile_url, { maxZoom: 19, attribution: state.config.tile_attribution || "" }).addTo(map);
  }
  map.createPane("facilities").style.zIndex = 450;
  map.createPane("route").style.zIndex = 460;
  map.attributionControl.setPrefix("Leaflet");
  map.on("click", (event) => {
    const { lat, lng } = event.latlng;
    routeAt(roundCoord(lng), roundCoord(lat));
  });
  // Keyboard: arrows pan (Leaflet), Enter routes the map centre (shown by a crosshair).
  const container = $("map");
  container.addEventListener("pointerdown", () => container.classList.remove("keyboard-mode"));
  container.addEventListener("keydown", (event) => {
    container.classList.add("keyboard-mode");
    if (event.key !== "Enter") return;
    event.preventDefault();
    // The rendered centre (under the crosshair), also while a pan animation is running.
    const centre = map.containerPointToLatLng(map.getSize().divideBy(2));
    routeAt(roundCoord(centre.lng), roundCoord(centre.lat));
  });
  state.routeLayer = L.layerGroup().addTo(map);
  return map;
}

function roundCoord(value) {
  return Math.round(value * 1e6) / 1e6;
}

function isPointCollection(featureCollection) {
  const first = (featureCollection.features || []).find((f) => f.geometry);
  return Boolean(first && /Point$/.test(first.geometry.type));
}

function zoneLayer(id, featureCollection, color) {
  const style = { ...(ZONE_STYLES[id] || { weight: 2, fillOpacity: 0 }), color };
  return L.geoJSON(featureCollection, { style: () => style, interactive: false, className: `zone zone-${id}` });
}

function facilityLayer(id, featureCollection, color) {
  return L.geoJSON(featureCollection, {
    pointToLayer: (feature, latlng) =>
      L.circleMarker(latlng, {
        pane: "facilities",
        radius: 6,
        color: "#ffffff",
        weight: 1.5,
        fillColor: color,
        fillOpacity: 0.95,
        className: `facility facility-${id}`,
      }),
    onEachFeature: (feature, layer) => {
      const props = feature.properties || {};
      const label = props.name || props.facility_name || feature.id || id;
      layer.bindTooltip(`${humanize(id)}: ${label}`);
    },
  });
}

async function loadCollections() {
  let listing;
  try {
    listing = await apiGet("/v1/collections");
  } catch (error) {
    $("layers-empty").textContent = `Layers could not be loaded (${error.message}).`;
    return;
  }
  const collections = listing.collections || [];
  const loaded = await Promise.all(
    collections.map(async (c) => {
      try {
        return { meta: c, items: await loadItems(c.id) };
      } catch (error) {
        console.warn(`collection ${c.id}: ${error.message}`);
        return null;
      }
    }),
  );
  const usable = loaded.filter(Boolean);
  // Zones first (fine kelurahan under coarse kecamatan), facilities last, on top.
  usable.sort((a, b) => rank(a) - rank(b));
  const bounds = L.latLngBounds([]);
  for (const { meta, items } of usable) {
    const kind = kindOf({ meta, items });
    const color = colorFor(kind, meta.id);
    const layer = kind === "points" ? facilityLayer(meta.id, items, color) : zoneLayer(meta.id, items, color);
    layer.addTo(state.map);
    if (kind === "zones" && layer.getLayers().length) bounds.extend(layer.getBounds());
    state.overlays.set(meta.id, { layer, kind, color, title: meta.title || humanize(meta.id) });
  }
  renderLayerToggles();
  if (bounds.isValid()) state.map.fitBounds(bounds, { padding: [12, 12] });
  document.body.dataset.layers = String(state.overlays.size);
}

// All pages of a collection (OGC API Features "next" links, same origin only).
async function loadItems(id) {
  let url = `/v1/collections/${encodeURIComponent(id)}/items?limit=${ITEM_LIMIT}`;
  const features = [];
  for (let page = 0; url && page < MAX_PAGES; page += 1) {
    const collection = await apiGet(url);
    features.push(...(collection.features || []));
    const next = (collection.links || []).find((link) => link.rel === "next");
    const nextUrl = next ? new URL(next.href, window.location.href) : null;
    url = nextUrl && nextUrl.origin === window.location.origin ? nextUrl.pathname + nextUrl.search : null;
  }
  return { type: "FeatureCollection", features };
}

function kindOf({ meta, items }) {
  if (meta.kind === "zones" || meta.kind === "facilities") return meta.kind === "zones" ? "zones" : "points";
  return isPointCollection(items) ? "points" : "zones";
}

function rank({ meta, items }) {
  if (kindOf({ meta, items }) === "points") return 100;
  const order = ["kelurahan", "kecamatan", "fire_district", "police_sector"].indexOf(meta.id);
  return order === -1 ? 50 : order;
}

function renderLayerToggles() {
  const box = $("layer-toggles");
  box.querySelectorAll(".toggle").forEach((node) => node.remove());
  $("layers-empty").hidden = state.overlays.size > 0;
  if (!state.overlays.size) $("layers-empty").textContent = "No layers published.";
  for (const [id, overlay] of state.overlays) {
    const input = el("input", { type: "checkbox", id: `toggle-${id}`, checked: true });
    input.addEventListener("change", () => {
      if (input.checked) overlay.layer.addTo(state.map);
      else overlay.layer.remove();
    });
    const swatch = el("span", { class: `swatch swatch-${overlay.kind} swatch-${id}`, "aria-hidden": "true" });
    swatch.style.setProperty("--swatch", overlay.color);
    box.append(el("div", { class: "toggle" }, input, el("label", { for: input.id }, swatch, overlay.title)));
  }
}

// ---------- info + categories ----------

async function loadInfo() {
  try {
    const info = await apiGet("/v1/info");
    const city = typeof info.city === "string" ? info.city : info.city?.name;
    if (city) {
      $("city-name").textContent = `· ${city}`;
      document.title = `geo_router · ${city}`;
    }
    const select = $("category");
    for (const category of info.categories || []) {
      const code = typeof category === "string" ? category : category.code;
      const name = typeof category === "string" ? category : category.name || category.code;
      const flag = category.emergency ? " (emergency)" : "";
      select.append(el("option", { value: code }, `${name}${flag}`));
    }
  } catch (error) {
    console.warn(`info: ${error.message}`);
  }
}

// ---------- routing ----------

async function routeAt(lon, lat) {
  $("lon").value = String(lon);
  $("lat").value = String(lat);
  const params = new URLSearchParams({ lon: String(lon), lat: String(lat), k: String(state.config.default_k || 3) });
  const category = $("category").value;
  if (category) params.set("category", category);
  document.body.dataset.route = "loading";
  showResult(el("p", { class: "hint" }, `Routing ${lon}, ${lat} …`));
  drawPoint(lon, lat);
  try {
    const answer = await apiGet(`/v1/route?${params}`);
    showResult(renderAnswer(answer));
    drawResponderLines(answer);
    document.body.dataset.route = "done";
  } catch (error) {
    const hint = error.status === 401 || error.status === 403 ? " Set an API key (top right)." : "";
    showResult(el("p", { class: "error", role: "alert" }, `Routing failed: ${error.message}.${hint}`));
    document.body.dataset.route = "error";
  }
}

function showResult(node) {
  $("result").replaceChildren(node);
}

function renderAnswer(answer) {
  const root = el("div");
  root.append(
    el("h2", {}, "Location"),
    el("p", { class: "where" }, `lon ${answer.lon}, lat ${answer.lat}`, answer.request_id ? el("span", { class: "request-id" }, ` · request ${answer.request_id}`) : null),
  );
  const warnings = answer.warnings || [];
  if (warnings.length) {
    root.append(el("ul", { class: "warnings", role: "alert" }, warnings.map((w) => el("li", {}, `⚠ ${humanize(w)}`))));
  }
  if (answer.category) root.append(renderCategory(answer.category));
  root.append(el("h2", {}, "Zones"), renderZones(answer.zones || {}));
  root.append(el("h2", {}, "Nearest responders"), renderResponders(answer.responders || {}));
  return root;
}

function renderCategory(category) {
  return el(
    "div",
    { class: `category${category.emergency ? " emergency" : ""}` },
    el("strong", {}, category.name || category.code),
    ` → ${category.agency}`,
    category.emergency ? el("span", { class: "badge emergency" }, "emergency") : null,
  );
}

function renderZones(zones) {
  const table = el("table", { class: "zones" }, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Layer"), el("th", { scope: "col" }, "Zone"), el("th", { scope: "col" }, "Status"))));
  const body = el("tbody");
  for (const [layer, match] of Object.entries(zones)) {
    const zone = match.zone_id ? el("span", {}, el("span", { class: "zone-name" }, match.name || match.zone_id), el("span", { class: "zone-id" }, ` ${match.zone_id}`)) : el("span", { class: "none" }, "none");
    const others = (match.candidates || []).filter((c) => c.zone_id !== match.zone_id);
    const candidates = others.length
      ? el("ul", { class: "candidates" }, others.map((c) => el("li", {}, `${c.name || c.zone_id} (${c.zone_id}) — ${formatDistance(c.distance_m)}`)))
      : null;
    body.append(
      el(
        "tr",
        { dataset: { layer } },
        el("th", { scope: "row" }, humanize(match.layer || layer)),
        el("td", {}, zone, candidates),
        el("td", {}, el("span", { class: `badge status-${match.status}` }, STATUS_TEXT[match.status] || match.status)),
      ),
    );
  }
  table.append(body);
  return table;
}

function renderResponders(responders) {
  const box = el("div", { class: "responders" });
  for (const [type, list] of Object.entries(responders)) {
    const color = FACILITY_COLORS[type] || "#555";
    const heading = el("h3", {}, el("span", { class: "swatch swatch-points", "aria-hidden": "true" }), humanize(type));
    heading.firstChild.style.setProperty("--swatch", color);
    const items = list.map((r, i) =>
      el(
        "li",
        { class: i === 0 ? "nearest" : null },
        el("span", { class: "responder-name" }, r.name || r.facility_id),
        el("span", { class: "responder-meta" }, ` ${formatDistance(r.distance_m)} · ${formatBearing(r.bearing_deg)}`),
      ),
    );
    box.append(heading, items.length ? el("ol", {}, items) : el("p", { class: "none" }, "none"));
  }
  if (!box.childElementCount) box.append(el("p", { class: "none" }, "No responders configured."));
  return box;
}

function drawPoint(lon, lat) {
  if (!state.map) return;
  state.routeLayer.clearLayers();
  L.circleMarker([lat, lon], { pane: "route", radius: 8, color: "#111", weight: 3, fillColor: "#ffd400", fillOpacity: 1, className: "route-point" }).addTo(state.routeLayer);
}

function drawResponderLines(answer) {
  if (!state.map) return;
  for (const [type, list] of Object.entries(answer.responders || {})) {
    const color = FACILITY_COLORS[type] || "#555";
    list.forEach((r, i) => {
      const nearest = i === 0;
      L.polyline(
        [
          [answer.lat, answer.lon],
          [r.lat, r.lon],
        ],
        {
          pane: "route",
          color,
          weight: nearest ? 3 : 1.5,
          opacity: nearest ? 0.9 : 0.55,
          dashArray: nearest ? null : "4 6",
          interactive: false,
          className: `responder-line responder-line-${type}${nearest ? " nearest" : ""}`,
        },
      ).addTo(state.routeLayer);
    });
  }
  state.routeLayer.eachLayer((layer) => layer.options.className === "route-point" && layer.bringToFront());
}

// ---------- forms ----------

function wireForms() {
  $("route-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const parsed = parseLonLat($("lon").value, $("lat").value);
    if (parsed.error) {
      showResult(el("p", { class: "error", role: "alert" }, parsed.error));
      return;
    }
    if (state.map) state.map.panTo([parsed.lat, parsed.lon]);
    routeAt(parsed.lon, parsed.lat);
  });
  const keyInput = $("api-key");
  keyInput.value = localStorage.getItem(KEY_STORAGE) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    setStatus(key ? "API key saved in this browser." : "API key cleared.");
    reloadLayers();
  });
  $("api-key-clear").addEventListener("click", () => {
    keyInput.value = "";
    localStorage.removeItem(KEY_STORAGE);
    setStatus("API key cleared.");
  });
}

function reloadLayers() {
  if (!state.map) return;
  for (const overlay of state.overlays.values()) overlay.layer.remove();
  state.overlays.clear();
  loadCollections();
}

async function loadConfig() {
  try {
    Object.assign(state.config, await apiGet("/map/config.json"));
  } catch (error) {
    console.warn(`map config: ${error.message}`);
  }
}

async function main() {
  wireForms();
  await loadConfig();
  const info = loadInfo();
  if (typeof window.L === "undefined") {
    $("map").hidden = true;
    // Leaflet ships with the service (/vendor/leaflet/); this is a blocked or failed load.
    $("layers-empty").textContent = "No map: Leaflet did not load. Routing by typed coordinates still works.";
    await info;
    document.body.dataset.ready = "no-map";
    return;
  }
  state.map = createMap();
  window.geoRouterMap = state.map; // for the browser test and the console: lon/lat -> pixels
  await Promise.all([info, loadCollections()]);
  document.body.dataset.ready = "yes";
}

main();
