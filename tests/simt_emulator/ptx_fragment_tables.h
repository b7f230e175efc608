// Fragment layouts transcribed from the PTX ISA ("Matrix Fragments for mma.m16n8k4", "... mma.m16n8k8",
// "... mma.m16n8k16 with floating point type", and the ldmatrix figures), written as data so that
// the tests do not share a line of reasoning with the emulator. With g = lane / 4 (groupID) and
// t = lane % 4 (threadID_in_group), the ISA gives each element of a lane's fragment as
//   row = rg*g + rt*t + r0,  col = cg*g + ct*t + c0
// and one row of a table is those six numbers for one element, in the ISA's element order
// (a0, a1, ...). Consecutive elements share a 32-bit register, two per register for f16/bf16
// ("a0, a1" in the first .f16x2 register) and one for tf32.
#pragma once

struct FragmentPlace {
  int rg, rt, r0, cg, ct, c0;
  int row(int lane) const { return rg * (lane / 4) + rt * (lane % 4) + r0; }
  int col(int lane) const { return cg * (lane / 4) + ct * (lane % 4) + c0; }
};

// m16n8k16, .f16/.bf16. A: 16 x 16 (row, k); B: 16 x 8 (k, col).
constexpr FragmentPlace kA_m16n8k16_f16[8] = {
    {1, 0, 0, 0, 2, 0}, {1, 0, 0, 0, 2, 1},  // a0, a1: row g, k 2t, 2t+1
    {1, 0, 8, 0, 2, 0}, {1, 0, 8, 0, 2, 1},  // a2, a3: row g+8
    {1, 0, 0, 0, 2, 8}, {1, 0, 0, 0, 2, 9},  // a4, a5: row g, k 2t+8, 2t+9
    {1, 0, 8, 0, 2, 8}, {1, 0, 8, 0, 2, 9},  // a6, a7: row g+8, k 2t+8, 2t+9
};
constexpr FragmentPlace kB_m16n8k16_f16[4] = {
    {0, 2, 0, 1, 0, 0}, {0, 2, 1, 1, 0, 0},  // b0, b1: k 2t, 2t+1, col g
    {0, 2, 8, 1, 0, 0}, {0, 2, 9, 1, 0, 0},  // b2, b3: k 2t+8, 2t+9
};

// m16n8k8, .f16/.bf16. A: 16 x 8; B: 8 x 8.
constexpr FragmentPlace kA_m16n8k8_f16[4] = {
    {1, 0, 0, 0, 2, 0}, {1, 0, 0, 0, 2, 1},  // a0, a1: row g, k 2t, 2t+1
    {1, 0, 8, 0, 2, 0}, {1, 0, 8, 0, 2, 1},  // a2, a3: row g+8
};
constexpr FragmentPlace kB_m16n8k8_f16[2] = {
    {0, 2, 0, 1, 0, 0}, {0, 2, 1, 1, 0, 0},  // b0, b1: k 2t, 2t+1, col g
};

// m16n8k8, .tf32 (one element a register).
constexpr FragmentPlace kA_m16n8k8_tf32[4] = {
    {1, 0, 0, 0, 1, 0},  // a0: row g, k t
    {1, 0, 8, 0, 1, 0},  // a1: row g+8, k t
    {1, 0, 0, 0, 1, 4},  // a2: row g, k t+4
    {1, 0, 8, 0, 1, 4},  // a3: row g+8, k t+4
};
constexpr FragmentPlace kB_m16n8k8_tf32[2] = {
    {0, 1, 0, 1, 0, 0},  // b0: k t, col g
    {0, 1, 4, 1, 0, 0},  // b1: k t+4
};

// m16n8k4, .tf32. A: 16 x 4; B: 4 x 8.
constexpr FragmentPlace kA_m16n8k4_tf32[2] = {
    {1, 0, 0, 0, 1, 0},  // a0: row g, k t
    {1, 0, 8, 0, 1, 0},  // a1: row g+8, k t
};
constexpr FragmentPlace kB_m16n8k4_tf32[1] = {
    {0, 1, 0, 1, 0, 0},  // b0: k t, col g
};

// C and D of every shape, f32: 16 x 8.
constexpr FragmentPlace kC_m16n8[4] = {
    {1, 0, 0, 0, 2, 0}, {1, 0, 0, 0, 2, 1},  // c0, c1: row g, col 2t, 2t+1
    {1, 0, 8, 0, 2, 0}, {1, 0, 8, 0, 2, 1},  // c2, c3: row g+8
};

// ldmatrix .m8n8 .b16: lane l names the address of row l % 8 of matrix l / 8; register i of lane l
// holds matrix i's elements (row, col) and (row, col + 1) of this table, lower column in the low
// half. With .trans a lane holds the same places of the transposed matrix: (col, row), (col + 1, row).
struct LdmatrixPlace {
  int row, col;
};
constexpr LdmatrixPlace kLdmatrixPlaces[32] = {
    {0, 0}, {0, 2}, {0, 4}, {0, 6}, {1, 0}, {1, 2}, {1, 4}, {1, 6},  // lanes 0-7
    {2, 0}, {2, 2}, {2, 4}, {2, 6}, {3, 0}, {3, 2}, {3, 4}, {3, 6},  // lanes 8-15
    {4, 0}, {4, 2}, {4, 4}, {4, 6}, {5, 0}, {5, 2}, {5, 4}, {5, 6},  // lanes 16-23
    {6, 0}, {6, 2}, {6, 4}, {6, 6}, {7, 0}, {7, 2}, {7, 4}, {7, 6},  // lanes 24-31
};

// wgmma .m64nNk16 / .m64nNk8 with f32 accumulators ("Register fragment layout for accumulator
// matrix D" in the wgmma section): the warpgroup's 4 warps stack in M (warp w holds rows 16w to
// 16w + 15), and within a warp the N columns come in 8-column blocks, each laid out as below:
// register i of lane l of warp w is D[16w + row(l)][8 (i / 4) + col(l)] by element i % 4 of this table.
constexpr FragmentPlace kD_m64nN[4] = {
    {1, 0, 0, 0, 2, 0}, {1, 0, 0, 0, 2, 1},  // d0, d1: row g, col 2t, 2t+1
    {1, 0, 8, 0, 2, 0}, {1, 0, 8, 0, 2, 1},  // d2, d3: row g+8
};

// wgmma operands in shared memory ("Shared Memory Matrix Layout" and the swizzling figures of the
// wgmma section; the canonical forms in CUTLASS's make_gmma_desc), per swizzle mode: the mode's value
// in descriptor bits 62-63; the bytes between consecutive rows of an 8-row group; and the
// permutation of a row's 16-byte chunks, chunk c of row r (of its group) stored at chunk
// c ^ ((r / xor_div) % xor_mod).
//  - K-major (K contiguous): a row is one M/N index. Without swizzling, rows are the 16-byte rows of
//    8 x 16-byte core matrices, core matrices LBO apart along K and SBO apart along M/N; with it,
//    8 rows of 32, 64 or 128 bytes of K form an atom, atoms SBO apart along M/N (LBO unused).
//  - MN-major (M/N contiguous): a row is one k, holding consecutive M/N elements. Without swizzling,
//    core matrices (8 k x 16 bytes) are SBO apart along M/N and LBO apart along K; with it, atoms of
//    8 k-rows of 32, 64 or 128 bytes are LBO apart along M/N and SBO apart along K.
struct SwizzleAtom {
  const char* name;
  unsigned mode;
  int row_pitch;
  int xor_div, xor_mod;
};
constexpr SwizzleAtom kSwizzleAtoms[4] = {
    {"no swizzle", 0, 16, 1, 1},  // chunks stay in place
    {"128B swizzle", 1, 128, 1, 8},
    {"64B swizzle", 2, 64, 2, 4},
    {"32B swizzle", 3, 32, 4, 2},
};
