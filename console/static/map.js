// The console's maps, on Leaflet (vendor/leaflet-1.9.4, from the npm package) with no base
// tiles: the console works with no internet. Everything is drawn on one canvas per map, so
// a city with thousands of trucks pans without stutter.
"use strict";

window.RescueMap = (() => {
  const STATE_COLOURS = { available: "#1b7a2e", offered: "#c77700", busy: "#0b5cad", offline: "#777" };
  const DEFAULT_VIEW = { center: [31.23, 121.47], zoom: 11 }; // Shanghai, where the demo lives

  function base(element, options = {}) {
    const map = L.map(element, {
      preferCanvas: true,
      renderer: L.canvas({ padding: 0.3 }),
      attributionControl: false,
      zoomControl: true,
      keyboard: true,
      minZoom: 3,
      maxZoom: 18,
    });
    map.setView(options.center || DEFAULT_VIEW.center, options.zoom || DEFAULT_VIEW.zoom);
    L.control.scale({ imperial: false }).addTo(map);
    return map;
  }

  async function json(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  }

  // Service areas of every provider, as dashed outlines (no fill, trucks stay readable).
  async function addServiceAreas(map) {
    const { providers } = await json("/v1/providers");
    const layer = L.layerGroup().addTo(map);
    for (const provider of providers) {
      if (!provider.service_area) continue;
      L.geoJSON(provider.service_area, {
        style: { color: "#6b3fa0", weight: 1.5, dashArray: "6 4", fill: true, fillOpacity: 0.03 },
        interactive: false,
      })
        .bindTooltip(provider.name)
        .addTo(layer);
    }
    element(map).dataset.areas = String(providers.filter((provider) => provider.service_area).length);
    return { layer, providers };
  }

  // The live fleet: every truck in view, coloured by state, refreshed every `periodMs`.
  function fleetLayer(map, { periodMs = 2000, onUpdate } = {}) {
    const markers = new Map(); // vehicle id → circle marker
    const layer = L.layerGroup().addTo(map);
    let timer = null;
    let running = false;

    async function refresh() {
      if (running) return;
      running = true;
      try {
        const bounds = map.getBounds().pad(0.2);
        const west = Math.max(-180, bounds.getWest());
        const east = Math.min(180, bounds.getEast());
        const south = Math.max(-90, bounds.getSouth());
        const north = Math.min(90, bounds.getNorth());
        const bbox = [west, south, east, north].map((value) => value.toFixed(5)).join(",");
        const { vehicles, truncated } = await json(`/v1/fleet?bbox=${bbox}`);
        const seen = new Set();
        const counts = { available: 0, offered: 0, busy: 0, offline: 0 };
        for (const vehicle of vehicles) {
          seen.add(vehicle.id);
          counts[vehicle.state] = (counts[vehicle.state] || 0) + 1;
          const colour = STATE_COLOURS[vehicle.state] || "#000";
          let marker = markers.get(vehicle.id);
          if (!marker) {
            marker = L.circleMarker([vehicle.lat, vehicle.lon], {
              radius: 5, weight: 1, color: "#fff", fillColor: colour, fillOpacity: 0.95,
            }).addTo(layer);
            marker.bindTooltip("");
            markers.set(vehicle.id, marker);
          } else {
            const at = marker.getLatLng();
            if (at.lat !== vehicle.lat || at.lng !== vehicle.lon) marker.setLatLng([vehicle.lat, vehicle.lon]);
            if (marker.options.fillColor !== colour) marker.setStyle({ fillColor: colour });
          }
          marker.vehicle = vehicle;
          marker.setTooltipContent(`${vehicle.vehicle_id} · ${vehicle.state} · ${vehicle.capabilities.join(", ")}`);
        }
        for (const [id, marker] of markers) {
          if (!seen.has(id)) {
            layer.removeLayer(marker);
            markers.delete(id);
          }
        }
        element(map).dataset.vehicles = String(markers.size);
        if (onUpdate) onUpdate({ counts, total: markers.size, truncated });
      } catch (error) {
        if (onUpdate) onUpdate({ error });
      } finally {
        running = false;
      }
    }

    return {
      markers,
      refresh,
      start() {
        if (timer) return;
        refresh();
        timer = setInterval(refresh, periodMs);
        map.on("moveend", refresh);
      },
      stop() {
        clearInterval(timer);
        timer = null;
        map.off("moveend", refresh);
      },
    };
  }

  function element(map) {
    return map.getContainer();
  }

  // Open cases as red rings; a click opens the case.
  function casesLayer(map, onOpen) {
    const layer = L.layerGroup().addTo(map);
    async function refresh() {
      const { cases } = await json("/v1/cases?status=new,diagnosing,dispatching,escalated,assigned,en_route,on_scene,in_service&limit=200");
      layer.clearLayers();
      for (const found of cases) {
        const position = [found.location.lat, found.location.lon];
        const ring = L.circleMarker(position, {
          radius: 8, weight: 3, color: found.status === "escalated" ? "#a40000" : "#d93025", fillOpacity: 0.2,
        });
        ring.bindTooltip(`${found.id.slice(0, 8)} · ${found.status} · ${found.service}`);
        ring.on("click", () => onOpen(found.id));
        ring.addTo(layer);
      }
      element(map).dataset.cases = String(cases.length);
    }
    return { layer, refresh };
  }

  // A case on its own map: the customer, the truck's trajectory, the line still to go.
  function caseLayer(map) {
    const layer = L.layerGroup().addTo(map);
    let shownCase = null;
    // Fits the view to the case the first time it is shown; later refreshes keep the
    // agent's own pan and zoom.
    async function show(found, trajectory) {
      const first = shownCase !== found.id;
      shownCase = found.id;
      layer.clearLayers();
      const customer = [found.location.lat, found.location.lon];
      L.circleMarker(customer, { radius: 8, weight: 3, color: "#d93025", fillOpacity: 0.3 })
        .bindTooltip("customer")
        .addTo(layer);
      const line = trajectory && trajectory.features && trajectory.features.find((f) => f.geometry && f.geometry.type === "LineString");
      const points = line ? line.geometry.coordinates.map(([lon, lat]) => [lat, lon]) : [];
      const container = element(map);
      container.dataset.trajectoryPoints = String(points.length);
      const bounds = L.latLngBounds([customer]);
      if (points.length > 0) {
        L.polyline(points, { color: "#0b5cad", weight: 4, opacity: 0.8 }).addTo(layer);
        const truck = points[points.length - 1];
        L.polyline([truck, customer], { color: "#0b5cad", weight: 2, dashArray: "6 6" }).addTo(layer);
        L.circleMarker(truck, { radius: 6, weight: 2, color: "#fff", fillColor: "#0b5cad", fillOpacity: 1 })
          .bindTooltip("truck")
          .addTo(layer);
        for (const point of points) bounds.extend(point);
        container.dataset.lineToCustomer = "1";
      } else {
        container.dataset.lineToCustomer = "0";
      }
      map.invalidateSize();
      if (!first && container.dataset.fitted === "1") return;
      if (points.length > 0) {
        map.fitBounds(bounds.pad(0.3), { maxZoom: 15 });
        container.dataset.fitted = "1";
      } else {
        map.setView(customer, 13);
        container.dataset.fitted = "0";
      }
    }
    return { layer, show };
  }

  // A location picker: a click puts a marker there and reports it.
  function picker(map, onPick) {
    let marker = null;
    function place(lat, lon) {
      if (!marker) marker = L.circleMarker([lat, lon], { radius: 8, weight: 3, color: "#d93025", fillOpacity: 0.4 }).addTo(map);
      else marker.setLatLng([lat, lon]);
    }
    map.on("click", (event) => {
      const lat = Number(event.latlng.lat.toFixed(6));
      const lon = Number(event.latlng.lng.toFixed(6));
      place(lat, lon);
      onPick(lat, lon);
    });
    return { place };
  }

  return { base, addServiceAreas, fleetLayer, casesLayer, caseLayer, picker, STATE_COLOURS };
})();
