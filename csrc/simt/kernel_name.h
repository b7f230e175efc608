// The readable name of a kernel from its address, for the counters: "depthwise_fprop_kernel<float>",
// "general_fprop_kernel<float, Tf32, TileShape<128, 64, 8, 8, 4>, false>". The symbol comes from
// the dynamic symbol table (dladdr) or, for the hidden symbols of a library built with
// -fvisibility=hidden, from the ELF .symtab of the file that holds the code; it is demangled and
// stripped of namespaces, return type and parameter list. A stripped binary gives "kernel@0x...".
#pragma once

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace simt::detail {

// Every function symbol of an ELF64 file's .symtab: {address as linked: mangled name}.
inline std::map<uint64_t, std::string> elf_function_symbols(const std::string& path) {
  std::map<uint64_t, std::string> symbols;
  std::ifstream file(path, std::ios::binary);
  Elf64_Ehdr header{};
  if (!file.read(reinterpret_cast<char*>(&header), sizeof header) || header.e_ident[EI_CLASS] != ELFCLASS64) {
    return symbols;
  }
  std::vector<Elf64_Shdr> sections(header.e_shnum);
  file.seekg(static_cast<std::streamoff>(header.e_shoff));
  file.read(reinterpret_cast<char*>(sections.data()), static_cast<std::streamsize>(sections.size() * sizeof(Elf64_Shdr)));
  const auto read_section = [&](const Elf64_Shdr& s) {
    std::vector<char> bytes(s.sh_size);
    file.seekg(static_cast<std::streamoff>(s.sh_offset));
    file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bytes;
  };
  for (const Elf64_Shdr& s : sections) {
    if (!file || s.sh_type != SHT_SYMTAB || s.sh_link >= sections.size()) continue;
    const std::vector<char> table = read_section(s);
    const std::vector<char> names = read_section(sections[s.sh_link]);
    const auto* entries = reinterpret_cast<const Elf64_Sym*>(table.data());
    for (std::size_t i = 0; i < table.size() / sizeof(Elf64_Sym); ++i) {
      if (ELF64_ST_TYPE(entries[i].st_info) == STT_FUNC && entries[i].st_name < names.size()) {
        symbols.emplace(entries[i].st_value, names.data() + entries[i].st_name);
      }
    }
  }
  return symbols;
}

// The mangled symbol at `function`, or "" if none is found.
inline std::string symbol_at(const void* function) {
  Dl_info info{};
  if (dladdr(function, &info) == 0) return "";
  if (info.dli_sname != nullptr && info.dli_saddr == function) return info.dli_sname;
  if (info.dli_fname == nullptr) return "";
  static std::map<std::string, std::map<uint64_t, std::string>> files;  // under kernel_name's lock
  auto found = files.find(info.dli_fname);
  if (found == files.end()) found = files.emplace(info.dli_fname, elf_function_symbols(info.dli_fname)).first;
  const auto address = reinterpret_cast<uintptr_t>(function);
  // Shared objects and PIE executables link at 0 (symbols are offsets); others at their address.
  for (const uint64_t linked : {uint64_t{address - reinterpret_cast<uintptr_t>(info.dli_fbase)}, uint64_t{address}}) {
    const auto symbol = found->second.find(linked);
    if (symbol != found->second.end()) return symbol->second;
  }
  return "";
}

// "void ns::kernel<float, ns::Tile<1, 2> >(ns::Grid, float*)" -> "kernel<float, Tile<1, 2> >".
inline std::string readable_function_name(std::string name) {
  const std::string anonymous = "(anonymous namespace)::";
  for (std::size_t at; (at = name.find(anonymous)) != std::string::npos;) name.erase(at, anonymous.size());
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '<') ++depth;
    if (c == '>') --depth;
    if (c == ' ' && depth == 0) start = i + 1;  // after the return type
    if (c == '(' && depth == 0) {
      name = name.substr(start, i - start);
      break;
    }
  }
  std::string unqualified;  // every "identifier::" dropped
  for (const char c : name) {
    unqualified += c;
    if (unqualified.size() >= 2 && unqualified.compare(unqualified.size() - 2, 2, "::") == 0) {
      unqualified.resize(unqualified.size() - 2);
      while (!unqualified.empty() &&
             (std::isalnum(static_cast<unsigned char>(unqualified.back())) || unqualified.back() == '_')) {
        unqualified.pop_back();
      }
    }
  }
  return unqualified;
}

inline std::string kernel_name(const void* function) {
  static std::mutex mutex;
  static std::map<const void*, std::string> names;
  std::lock_guard<std::mutex> lock(mutex);
  const auto cached = names.find(function);
  if (cached != names.end()) return cached->second;
  std::string name;
  const std::string mangled = symbol_at(function);
  int status = -1;
  char* demangled = mangled.empty() ? nullptr : abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (demangled != nullptr && status == 0) {
    name = readable_function_name(demangled);
  } else if (!mangled.empty()) {
    name = mangled;  // a C function
  } else {
    char text[32];
    std::snprintf(text, sizeof text, "kernel@%p", function);
    name = text;
  }
  std::free(demangled);
  return names.emplace(function, name).first->second;
}

}  // namespace simt::detail
