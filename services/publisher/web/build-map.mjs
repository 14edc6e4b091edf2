// Builds the public page's map of Việt Nam once, at build time: the country outline from world-atlas
// (Natural Earth 1:10m, public domain), projected with d3-geo's Mercator to SVG paths. The server draws
// units on it with the same projection (services/publisher/domain/geo.py), so nothing is fetched at page
// load and no tile server is needed. Usage: node build-map.mjs <output.json>
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createRequire } from "node:module";
import { feature } from "topojson-client";
import { geoBounds, geoMercator, geoPath } from "d3-geo";

const require = createRequire(import.meta.url);
const output = process.argv[2];
if (!output) throw new Error("usage: node build-map.mjs <output.json>");

const WIDTH = 600;
const PADDING = 12;
// Hoàng Sa lies in Natural Earth's China feature and Trường Sa is a feature of its own; both are drawn as
// part of Việt Nam, as Vietnamese maps must show them.
const HOANG_SA_BOX = [[111.0, 15.6], [113.0, 17.2]];

const atlas = JSON.parse(readFileSync(require.resolve("world-atlas/countries-10m.json"), "utf8"));
const countries = feature(atlas, atlas.objects.countries).features;
const vietnam = countries.find((f) => f.id === "704");
const spratly = countries.find((f) => f.properties.name === "Spratly Is.");
if (!vietnam || !spratly) throw new Error("world-atlas no longer has Vietnam (704) or the Spratly Is. feature");

const polygonsOf = (f) => (f.geometry.type === "MultiPolygon" ? f.geometry.coordinates : [f.geometry.coordinates]);
const inside = ([[x0, y0], [x1, y1]], [[a0, b0], [a1, b1]]) => x0 >= a0 && x1 <= a1 && y0 >= b0 && y1 <= b1;
const hoangSa = countries.flatMap(polygonsOf).filter((p) => inside(geoBounds({ type: "Polygon", coordinates: p }), HOANG_SA_BOX));
const multi = (polygons) => ({ type: "Feature", properties: {}, geometry: { type: "MultiPolygon", coordinates: polygons } });
const hoangSaFeature = multi(hoangSa);
const truongSaFeature = multi(polygonsOf(spratly));

const everything = { type: "FeatureCollection", features: [vietnam, hoangSaFeature, truongSaFeature] };
const [[west, south], [east, north]] = geoBounds(everything);
const probe = geoMercator().fitWidth(WIDTH - 2 * PADDING, everything);
const [[x0, y0], [x1, y1]] = geoPath(probe).bounds(everything);
const height = Math.ceil(y1 - y0 + 2 * PADDING);
const projection = geoMercator().fitExtent([[PADDING, PADDING], [WIDTH - PADDING, height - PADDING]], everything);
const path = geoPath(projection).digits(1);
const centroid = (f) => geoPath(projection).centroid(f).map((v) => Math.round(v * 10) / 10);

// Control points projected by d3 itself: the server's projection is tested against them.
const controls = [[105.8542, 21.0285], [106.7009, 10.7763], [108.2022, 16.0544], [102.12, 8.56], [117.0, 23.4]].map(
  ([lon, lat]) => ({ lon, lat, xy: projection([lon, lat]) }),
);

const map = {
  source: "world-atlas 2.x (Natural Earth 1:10m admin-0, public domain), projected with d3-geo Mercator",
  bounds: { west, south, east, north },
  width: WIDTH,
  height,
  projection: { type: "mercator", scale: projection.scale(), translate: projection.translate() },
  outline: path(vietnam),
  archipelagos: [
    { key: "hoang_sa", path: path(hoangSaFeature), label: centroid(hoangSaFeature) },
    { key: "truong_sa", path: path(truongSaFeature), label: centroid(truongSaFeature) },
  ],
  controls,
};
mkdirSync(dirname(output), { recursive: true });
writeFileSync(output, JSON.stringify(map));
console.log(`map of Việt Nam: ${WIDTH}×${height}, ${(JSON.stringify(map).length / 1024).toFixed(0)} KiB -> ${output}`);
