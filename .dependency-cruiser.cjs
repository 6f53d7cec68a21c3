// The layer map of src/ (docs/architecture.md, "Layers"), checked by `npm run check:layers` in
// `npm test`. Rooms are src/'s top-level folders (and files); a room imports only rooms of its own
// layer or of the layers below, and no module is part of an import cycle (type-only imports
// included). Keep this list and the picture in docs/architecture.md the same.
/** Bottom first. */
const LAYERS = [
  { name: "facts", what: "model facts and file helpers", rooms: ["errors", "model", "version.ts", "files", "html", "types"] },
  { name: "prompt", what: "the prompt, the knob table and scores", rooms: ["prompt", "config", "scoring"] },
  { name: "formats", what: "model files: GGUF, Hugging Face checkpoints, generated test models, measuring primitives", rooms: ["gguf", "hf", "testmodel", "measure"] },
  { name: "engines", what: "the engines", rooms: ["engines"] },
  { name: "pipeline", what: "the scoring pipeline and what runs beside it", rooms: ["pipeline", "monitor", "scheduler", "distributed", "eval", "doctor"] },
  { name: "composition", what: "the composition root", rooms: ["compose", "reranker.ts"] },
  { name: "entry", what: "entry points: server, CLI, bench, workers, integrations, the package's exports", rooms: ["server", "cli", "bench", "worker", "integrations", "index.ts"] },
];

const escape = (room) => room.replace(/\./g, "\\.");
const roomsPattern = (rooms) => `^src/(${rooms.map(escape).join("|")})($|/)`;
const allRooms = LAYERS.flatMap((l) => l.rooms);

const layerRules = LAYERS.slice(0, -1).map((layer, i) => {
  const above = LAYERS.slice(i + 1);
  return {
    name: `layer-${layer.name}-points-up`,
    comment: `${layer.what} (${layer.rooms.join(", ")}) sit below ${above.map((l) => l.name).join(", ")}: an import from them up to those rooms runs an arrow the wrong way. Move the shared piece down into the lowest room that needs it (docs/architecture.md, "Layers").`,
    severity: "error",
    from: { path: roomsPattern(layer.rooms) },
    to: { path: roomsPattern(above.flatMap((l) => l.rooms)) },
  };
});

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "An import cycle (type-only imports count): break it by moving the shared type or function into the lower of the two rooms.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: "room-not-in-a-layer",
      comment: "A new room of src/ has no place in the layer map: add it to LAYERS in .dependency-cruiser.cjs and to docs/architecture.md.",
      severity: "error",
      from: { path: "^src/", pathNot: roomsPattern(allRooms) },
      to: {},
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(\\.test\\.ts$|node_modules)" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
