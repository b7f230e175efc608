// Schemas of the convolution ops (conv2d's shuffle_output: ShuffleNet's channel shuffle with
// `groups` groups fused into the output write, see ConvParams), shared by the `convkernels` library and the `convkernels_simt`
// library (the CUDA kernels run on the CPU by the SIMT emulator), so both expose the same ops.
#pragma once

#include <string>
#include <tuple>
#include <vector>

#include <torch/library.h>

#include "float32_precision.h"
#include "tile_table.h"

namespace convkernels {

// A tile table's entries as two columns, (keys, tiles).
inline std::tuple<std::vector<std::string>, std::vector<std::string>> table_columns(const TileTable::Entries& entries) {
  std::tuple<std::vector<std::string>, std::vector<std::string>> columns;
  for (const auto& [key, tile] : entries) {
    std::get<0>(columns).push_back(key);
    std::get<1>(columns).push_back(tile);
  }
  return columns;
}

inline void define_conv_ops(torch::Library& m) {
  m.def(
      "conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups, bool shuffle_output=False) -> Tensor");
  m.def(
      "conv_transpose2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, SymInt[2] output_padding, int groups, int[2] dilation) -> Tensor");
  m.def(
      "conv2d_weight(Tensor input, Tensor grad_output, SymInt[4] weight_size, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups) -> Tensor");
  m.def(
      "conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, bool shuffle_output, bool[3] output_mask) "
      "-> (Tensor?, Tensor?, Tensor?)");
  m.def(
      "conv_transpose2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[2] padding, SymInt[2] output_padding, int groups, int[2] dilation, bool[3] output_mask) "
      "-> (Tensor?, Tensor?, Tensor?)");
  // The library's float32 precision on CUDA ("default" or "3xtf32"); returns the previous one.
  m.def("set_float32_precision(str precision) -> str", &set_float32_precision);
  // The tile table (tile_table.h), which convkernels.tiles reads and writes: its (keys, tiles), and
  // exchange_tile_table, which replaces it with keys[i] -> tiles[i] and returns the previous one.
  m.def("tile_table() -> (str[], str[])", [] { return table_columns(tile_table().entries()); });
  m.def("exchange_tile_table(str[] keys, str[] tiles) -> (str[], str[])",
        [](std::vector<std::string> keys, std::vector<std::string> tiles) {
          TORCH_CHECK(keys.size() == tiles.size(), "exchange_tile_table: ", keys.size(), " keys but ",
                      tiles.size(), " tiles");
          TileTable::Entries entries;
          for (std::size_t i = 0; i < keys.size(); ++i) entries[std::move(keys[i])] = std::move(tiles[i]);
          return table_columns(tile_table().exchange(std::move(entries)));
        });
  // start=True starts recording the launch sites' choices; start=False ends it and returns them:
  // (keys, candidates comma-separated, chosen tiles).
  m.def("record_tile_choices(bool start) -> (str[], str[], str[])", [](bool start) {
    std::vector<std::string> keys, candidates, chosen;
    for (TileTable::Choice& choice : tile_table().record(start)) {
      keys.push_back(std::move(choice.key));
      candidates.push_back(std::move(choice.candidates));
      chosen.push_back(std::move(choice.chosen));
    }
    return std::make_tuple(keys, candidates, chosen);
  });
}

}  // namespace convkernels
