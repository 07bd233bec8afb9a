import {removeTempDirs} from './temp.js';

/** Mocha's root hooks (.mocharc.json): what every run does once, after all its suites. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    const {kept} = await removeTempDirs();
    if (kept.length > 0) process.stderr.write(`test directories left in place, a mount still inside: ${kept.join(', ')}\n`);
  },
};
