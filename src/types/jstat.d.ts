// jstat ships no types; this declares only the part qwen-rerank uses.
declare module "jstat" {
  const jstat: { jStat: { studentt: { cdf(x: number, dof: number): number } } };
  export default jstat;
}
