/** The connection table's entry layout (CONN_LAYOUT): fields fit their block, are aligned and do not overlap. */
import assert from 'node:assert/strict';
import { CONN_LAYOUT } from '../../../core/conn/table.js';

describe('core/conn/table CONN_LAYOUT', () => {
  for (const [name, block] of Object.entries(CONN_LAYOUT)) {
    it(`${name} block: every field inside ${block.bytes} bytes, aligned to its width, no overlaps`, () => {
      const used = new Array<string | undefined>(block.bytes);
      for (const [field, spec] of Object.entries(block)) {
        if (field === 'bytes' || typeof spec === 'number') continue;
        assert.equal(spec.off % spec.width, 0, `${field} at ${spec.off} is not aligned to ${spec.width}`);
        for (let b = spec.off; b < spec.off + spec.width * spec.count; b++) {
          assert.ok(b < block.bytes, `${field} runs past the ${block.bytes}-byte block`);
          assert.equal(used[b], undefined, `${field} overlaps ${used[b]} at byte ${b}`);
          used[b] = field;
        }
      }
      // Blocks are a power of two so that entries never straddle more cache lines than needed.
      assert.equal(block.bytes & (block.bytes - 1), 0);
    });
  }
});
